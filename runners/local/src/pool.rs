//! The process pool: the app binary runs as child processes, one invocation at a time each, like
//! a FaaS invoker. Per function: warm instances are reused and expire when idle, a concurrency
//! limit queues extra calls, the deadline is enforced in the child (and by killing the process
//! when the child cannot stop its handler), a crash is isolated to its instance, and
//! stdout/stderr are captured per invocation.
//!
//! The child protocol: the pool starts the binary with `FAAS_LOCAL_SOCKET=<path>` and
//! `FAAS_FUNCTION=<name>`; `faas::serve` in the child serves HTTP/1.1 on that Unix socket:
//! `POST /invoke` with the payload as body and the headers `faas-invocation-id`,
//! `faas-deadline-ms`, `traceparent`, `content-type`. The reply is `200` with the result, or the
//! portable error (`faas_host::wire::error_parts`).
//!
//! Deadlines: the child aborts a handler still running at `faas-deadline-ms` and answers with a
//! timeout error, and its process stays warm. A handler stuck in blocking code cannot be aborted,
//! so the child gives no answer; [`KILL_GRACE`] after the deadline the pool kills the process
//! (its whole group). Either way the caller gets the same `timeout` error. After each invocation the child writes
//! `__FAAS_END_OF_INVOCATION__ <id>` on stdout and stderr, so every line before it belongs to that
//! invocation. The child exits when its stdin closes, so children never outlive the pool.
//!
//! The processes are run by [`faas_supervisor`]: each in its own process group (a timeout or a
//! retirement kills what the function started too), with a cleared environment. A child sees
//! the function's deployed variables, the protocol's `FAAS_*` variables, [`faas_supervisor::BASE_ENV`]
//! and the developer's `RUST_LOG` and `RUST_BACKTRACE`, and nothing else of ours: no platform's
//! variables (`AWS_LAMBDA_RUNTIME_API`, `PORT`, ...), so it cannot take itself for another host.
//!
//! The names of that protocol live in [`faas_host::wire`]:
//!
//! ```
//! use faas_host::wire;
//! assert_eq!(wire::ENV_SOCKET, "FAAS_LOCAL_SOCKET");
//! assert_eq!(wire::ENV_FUNCTION, "FAAS_FUNCTION");
//! assert_eq!(wire::INVOCATION_ID, "faas-invocation-id");
//! assert_eq!(wire::DEADLINE_MS, "faas-deadline-ms");
//! assert_eq!(wire::SENTINEL, "__FAAS_END_OF_INVOCATION__");
//! ```
//!
//! See [`FunctionPool`] for running a function's instances.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use faas_api::{Error, ErrorKind, FunctionSpec, Payload};
use faas_host::wire::{self, SENTINEL};
use faas_supervisor::{
    Input, Limit, LineCapture, LineLog, NotReady, Output, Pool, PoolConfig, Process, ProcessSpec, WhenBusy,
};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::exec::{Outcome, gate_error, human, until};

/// How long a new process may take to start serving before it is killed and the call fails.
///
/// ```
/// assert_eq!(faas_runner_local::pool::START_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after an invocation's deadline the pool waits for the child's own timeout answer
/// before it kills the process: the backstop for a handler the child cannot stop.
///
/// ```
/// assert_eq!(faas_runner_local::pool::KILL_GRACE, std::time::Duration::from_millis(500));
/// ```
pub const KILL_GRACE: Duration = Duration::from_millis(500);
/// Longest log line kept, in bytes; longer lines are cut.
///
/// ```
/// assert_eq!(faas_runner_local::pool::MAX_LOG_LINE, 16 * 1024);
/// ```
pub const MAX_LOG_LINE: usize = 16 * 1024;
/// Most log lines kept per invocation (the oldest are dropped first).
///
/// ```
/// assert_eq!(faas_runner_local::pool::MAX_LOG_LINES, 10_000);
/// ```
pub const MAX_LOG_LINES: usize = 10_000;

/// Sequence for socket file names, unique across every pool of the process.
static SOCKET_SEQ: AtomicU64 = AtomicU64::new(1);

/// Settings shared by the pools of one runner.
///
/// `services_url` is shared: setting it once the front is listening reaches every instance
/// started after that.
///
/// ```
/// use std::time::Duration;
/// use faas_runner_local::pool::PoolOptions;
/// let options = PoolOptions {
///     socket_dir: std::env::temp_dir(),
///     idle_timeout: Duration::from_secs(300),
///     memory_limit: false,
///     max_body: 6 * 1024 * 1024,
///     max_waiting: 64,
///     echo_logs: false,
///     services_url: Default::default(),
///     events_url: None,
/// };
/// let for_a_pool = options.clone();
/// *options.services_url.write().unwrap() = Some("http://127.0.0.1:8080".into());
/// assert_eq!(for_a_pool.services_url.read().unwrap().as_deref(), Some("http://127.0.0.1:8080"));
/// ```
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Directory for the instances' Unix sockets.
    pub socket_dir: PathBuf,
    /// Idle instances are stopped after this long.
    pub idle_timeout: Duration,
    /// Apply `memory_mb` as a data-segment limit (RLIMIT_DATA).
    pub memory_limit: bool,
    /// Largest response body read from an instance.
    pub max_body: usize,
    /// Most calls waiting for a free instance.
    pub max_waiting: usize,
    /// Echo instance output to our stderr.
    pub echo_logs: bool,
    /// Base URL of the HTTP front, handed to new instances for `Context::invoke`/`emit`.
    pub services_url: Arc<RwLock<Option<String>>>,
    /// Gateway ingress URL for `Context::emit`, handed to new instances (`FAAS_EVENTS_URL`).
    pub events_url: Option<String>,
}

/// Variables of ours a child gets besides [`faas_supervisor::BASE_ENV`]: the developer's log
/// filter and backtrace setting, as under `cargo run`.
const INHERITED: [&str; 2] = ["RUST_LOG", "RUST_BACKTRACE"];

/// One process of a function, with its connection.
struct Instance {
    number: u64,
    process: Process,
    sender: SendRequest<Full<Bytes>>,
    socket: PathBuf,
}

impl Instance {
    fn logs(&mut self) -> &mut LineLog {
        log_of(&mut self.process)
    }
}

impl faas_supervisor::Instance for Instance {
    fn usable(&self) -> bool {
        self.process.is_running()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_file(&self.socket);
        tracing::debug!(instance = self.number, "stopped an instance");
    }
}

/// The lines of a process spawned by [`FunctionPool`] (always with [`Output::Lines`]).
fn log_of(process: &mut Process) -> &mut LineLog {
    process.lines().expect("pool processes are spawned with Output::Lines")
}

/// The instances of one deployed function.
///
/// With a faas app binary (one whose `main` calls `faas::serve`):
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::{Duration, SystemTime};
/// use faas_api::{FunctionSpec, Payload, TraceContext};
/// use faas_runner_local::pool::{FunctionPool, PoolOptions};
///
/// let options = PoolOptions {
///     socket_dir: std::env::temp_dir(),
///     idle_timeout: Duration::from_secs(300),
///     memory_limit: true,
///     max_body: 6 * 1024 * 1024,
///     max_waiting: 64,
///     echo_logs: true,
///     services_url: Default::default(),
///     events_url: None,
/// };
/// let spec = FunctionSpec { prewarm: 1, ..FunctionSpec::new("hello") };
/// let pool = FunctionPool::start(spec, "target/debug/my-app".into(), options);
/// pool.prewarm().await;
/// assert_eq!(pool.idle_count(), 1);
/// let deadline = SystemTime::now() + Duration::from_secs(30);
/// let input = Payload::json(&serde_json::json!({"name": "Ada"})).unwrap();
/// let outcome = pool.invoke("act-1", deadline, &TraceContext::random().traceparent(), input).await;
/// println!("{:?} (cold: {}, logs: {:?})", outcome.result, outcome.cold, outcome.logs);
/// assert!(!outcome.cold); // the pre-warmed instance served it
/// pool.retire().await;
/// # }
/// ```
pub struct FunctionPool {
    spec: FunctionSpec,
    binary: PathBuf,
    options: PoolOptions,
    instances: Arc<Pool<Instance>>,
    next_number: AtomicU64,
}

impl FunctionPool {
    /// Creates the pool (no process is started until the first call or [`FunctionPool::prewarm`]),
    /// and the task that stops instances idle for longer than `options.idle_timeout`. Needs a
    /// tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use std::path::PathBuf;
    /// # use std::time::{Duration, SystemTime};
    /// # use faas_api::{FunctionSpec, Payload};
    /// # use faas_runner_local::pool::{FunctionPool, PoolOptions};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let options = PoolOptions {
    /// #     socket_dir: dir.path().to_path_buf(),
    /// #     idle_timeout: Duration::from_secs(60),
    /// #     memory_limit: false,
    /// #     max_body: 6 << 20,
    /// #     max_waiting: 16,
    /// #     echo_logs: false,
    /// #     services_url: Default::default(),
    /// #     events_url: None,
    /// # };
    /// # let deadline = SystemTime::now() + Duration::from_secs(10);
    /// let pool = FunctionPool::start(FunctionSpec::new("hello"), PathBuf::from("false"), options);
    /// assert_eq!(pool.idle_count(), 0);
    /// # }
    /// ```
    pub fn start(spec: FunctionSpec, binary: PathBuf, options: PoolOptions) -> Arc<FunctionPool> {
        let config = PoolConfig::new(spec.concurrency as usize, WhenBusy::Queue { max_waiting: options.max_waiting })
            .idle_timeout(Some(options.idle_timeout));
        let instances = Pool::new(config);
        Arc::new(FunctionPool { spec, binary, options, instances, next_number: AtomicU64::new(1) })
    }

    /// Starts the spec's `prewarm` instances (at most its concurrency) ahead of the first call. An
    /// instance that fails to start is logged and pre-warming stops; the error will show on the
    /// first call.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use std::path::PathBuf;
    /// # use std::time::{Duration, SystemTime};
    /// # use faas_api::{FunctionSpec, Payload};
    /// # use faas_runner_local::pool::{FunctionPool, PoolOptions};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let options = PoolOptions {
    /// #     socket_dir: dir.path().to_path_buf(),
    /// #     idle_timeout: Duration::from_secs(60),
    /// #     memory_limit: false,
    /// #     max_body: 6 << 20,
    /// #     max_waiting: 16,
    /// #     echo_logs: false,
    /// #     services_url: Default::default(),
    /// #     events_url: None,
    /// # };
    /// # let deadline = SystemTime::now() + Duration::from_secs(10);
    /// let spec = FunctionSpec { prewarm: 2, ..FunctionSpec::new("hello") };
    /// let pool = FunctionPool::start(spec, PathBuf::from("false"), options); // `false` exits at once
    /// pool.prewarm().await;
    /// assert_eq!(pool.idle_count(), 0);
    /// # }
    /// ```
    pub async fn prewarm(&self) {
        for _ in 0..self.spec.prewarm.min(self.spec.concurrency) {
            match self.spawn().await {
                Ok(i) => {
                    self.instances.add_idle(i);
                }
                Err(e) => {
                    tracing::warn!(function = %self.spec.name, error = %e, "pre-warming failed");
                    break;
                }
            }
        }
    }

    /// Number of idle (warm) instances.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use std::path::PathBuf;
    /// # use std::time::{Duration, SystemTime};
    /// # use faas_api::{FunctionSpec, Payload};
    /// # use faas_runner_local::pool::{FunctionPool, PoolOptions};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let options = PoolOptions {
    /// #     socket_dir: dir.path().to_path_buf(),
    /// #     idle_timeout: Duration::from_secs(60),
    /// #     memory_limit: false,
    /// #     max_body: 6 << 20,
    /// #     max_waiting: 16,
    /// #     echo_logs: false,
    /// #     services_url: Default::default(),
    /// #     events_url: None,
    /// # };
    /// # let deadline = SystemTime::now() + Duration::from_secs(10);
    /// let pool = FunctionPool::start(FunctionSpec::new("hello"), PathBuf::from("false"), options);
    /// assert_eq!(pool.idle_count(), 0); // nothing starts before the first call
    /// # }
    /// ```
    pub fn idle_count(&self) -> usize {
        self.instances.idle_count()
    }

    /// Stops idle instances now and busy ones when they finish; the pool takes no new work.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use std::path::PathBuf;
    /// # use std::time::{Duration, SystemTime};
    /// # use faas_api::{FunctionSpec, Payload};
    /// # use faas_runner_local::pool::{FunctionPool, PoolOptions};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let options = PoolOptions {
    /// #     socket_dir: dir.path().to_path_buf(),
    /// #     idle_timeout: Duration::from_secs(60),
    /// #     memory_limit: false,
    /// #     max_body: 6 << 20,
    /// #     max_waiting: 16,
    /// #     echo_logs: false,
    /// #     services_url: Default::default(),
    /// #     events_url: None,
    /// # };
    /// # let deadline = SystemTime::now() + Duration::from_secs(10);
    /// let pool = FunctionPool::start(FunctionSpec::new("hello"), PathBuf::from("false"), options);
    /// pool.retire().await;
    /// let outcome = pool.invoke("act-1", deadline, "", Payload::empty()).await;
    /// let err = outcome.result.unwrap_err();
    /// assert_eq!(err.kind(), faas_api::ErrorKind::BackendUnavailable);
    /// assert_eq!(err.message(), "function `hello` was removed or replaced");
    /// # }
    /// ```
    pub async fn retire(&self) {
        self.instances.close();
    }

    /// Runs one invocation on a warm instance, or a new one (then the outcome is `cold`), waiting
    /// for a free slot under the function's concurrency limit. At `deadline` the child stops the
    /// handler and the call fails with a timeout error, the instance staying warm; when the child
    /// has not answered [`KILL_GRACE`] later, the instance is killed (the same timeout error). A
    /// process that dies is a crash error with its exit status and last log lines, and the next
    /// call gets a new process.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use std::path::PathBuf;
    /// # use std::time::{Duration, SystemTime};
    /// # use faas_api::{FunctionSpec, Payload};
    /// # use faas_runner_local::pool::{FunctionPool, PoolOptions};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let options = PoolOptions {
    /// #     socket_dir: dir.path().to_path_buf(),
    /// #     idle_timeout: Duration::from_secs(60),
    /// #     memory_limit: false,
    /// #     max_body: 6 << 20,
    /// #     max_waiting: 16,
    /// #     echo_logs: false,
    /// #     services_url: Default::default(),
    /// #     events_url: None,
    /// # };
    /// # let deadline = SystemTime::now() + Duration::from_secs(10);
    /// let pool = FunctionPool::start(FunctionSpec::new("hello"), PathBuf::from("false"), options);
    /// let outcome = pool.invoke("act-1", deadline, "", Payload::bytes("hi")).await;
    /// let err = outcome.result.unwrap_err();
    /// assert_eq!(err.kind(), faas_api::ErrorKind::Crash);
    /// assert!(err.message().contains("exited during start-up: the process exited with status 1"), "{}", err.message());
    /// assert!(outcome.cold);
    /// # }
    /// ```
    pub async fn invoke(&self, id: &str, deadline: SystemTime, traceparent: &str, payload: Payload) -> Outcome {
        let mut lease = match self.instances.lease(until(deadline)).await {
            Ok(lease) => lease,
            Err(e) => return Outcome::refused(gate_error(&self.spec.name, e, "was removed or replaced")),
        };
        let (mut instance, cold) = match lease.take_warm() {
            Some(i) => (i, false),
            None => match self.spawn().await {
                Ok(i) => (i, true),
                Err(e) => return Outcome { result: Err(e), logs: vec![], cold: true },
            },
        };
        let wait = until(deadline) + KILL_GRACE;
        let deadline_ms = deadline.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis();
        // The deadline as the child reads it (whole milliseconds).
        let child_deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms as u64);
        let mut req = hyper::Request::post("/invoke")
            .header(wire::INVOCATION_ID, id)
            .header(wire::DEADLINE_MS, deadline_ms.to_string())
            .header(wire::TRACEPARENT, traceparent)
            .header(http::header::HOST, "faas-function");
        if let Some(ct) = payload.content_type() {
            req = req.header(http::header::CONTENT_TYPE, ct);
        }
        let req = match req.body(Full::new(payload.into_body())) {
            Ok(r) => r,
            Err(e) => {
                lease.give_back(instance);
                return Outcome {
                    result: Err(Error::bad_input(format!("invalid request header: {e}"))),
                    logs: vec![],
                    cold,
                };
            }
        };
        let max_body = self.options.max_body;
        let exchange = async {
            instance.sender.ready().await?;
            let resp = instance.sender.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, max_body + 1).collect().await.map(|c| c.to_bytes());
            Ok::<_, hyper::Error>((parts, body))
        };
        match tokio::time::timeout(wait, exchange).await {
            Err(_) => {
                tracing::warn!(function = %self.spec.name, instance = instance.number, "no answer after the deadline; killing the instance");
                let logs = self.kill_and_drain(instance).await;
                Outcome { result: Err(self.timed_out()), logs, cold }
            }
            Ok(Err(_transport)) => {
                let (status, logs) = self.crashed(instance).await;
                Outcome { result: Err(crash_error(&self.spec.name, &status, &logs)), logs, cold }
            }
            Ok(Ok((parts, Err(_too_big_or_broken)))) => {
                let logs = self.kill_and_drain(instance).await;
                let error = if parts.status.is_success() {
                    Error::payload_too_large(format!(
                        "the response of `{}` is over the limit of {max_body} bytes",
                        self.spec.name
                    ))
                } else {
                    Error::crash(format!("function `{}` broke off its response", self.spec.name))
                };
                Outcome { result: Err(error), logs, cold }
            }
            Ok(Ok((parts, Ok(body)))) => {
                let logs = instance.logs().until_marker(id, Duration::from_secs(2)).await;
                let result = if parts.status == http::StatusCode::OK {
                    Ok(Payload::new(body, wire::content_type(&parts.headers)))
                } else {
                    match wire::error_from_response(parts.status, &parts.headers, &body) {
                        // The child stopped the handler at its deadline: reported in the pool's
                        // words, as when it kills a process (a handler's own timeout error
                        // before the deadline is passed on as it is).
                        e if e.kind() == ErrorKind::Timeout && SystemTime::now() >= child_deadline => {
                            Err(self.timed_out())
                        }
                        e => Err(e),
                    }
                };
                lease.give_back(instance);
                Outcome { result, logs, cold }
            }
        }
    }

    /// The timeout error of a call that ran to its deadline.
    fn timed_out(&self) -> Error {
        Error::timeout(format!("function `{}` timed out after {}", self.spec.name, human(self.spec.timeout)))
    }

    /// Kills the instance (its whole process group) and returns what it wrote until it was gone.
    async fn kill_and_drain(&self, mut instance: Instance) -> Vec<String> {
        instance.process.kill_and_wait().await;
        instance.logs().until_closed(Duration::from_millis(500)).await
    }

    /// The exit of an instance whose connection broke, and its last lines.
    async fn crashed(&self, mut instance: Instance) -> (String, Vec<String>) {
        let status = match instance.process.wait_timeout(Duration::from_secs(2)).await {
            Some(exit) => exit.to_string(),
            None => {
                instance.process.kill_and_wait().await;
                "the connection to the process broke; the process was killed".to_string()
            }
        };
        let logs = instance.logs().until_closed(Duration::from_millis(500)).await;
        (status, logs)
    }

    async fn spawn(&self) -> Result<Instance, Error> {
        if self.instances.is_closed() {
            return Err(Error::unavailable(format!("function `{}` was removed or replaced", self.spec.name)));
        }
        let number = self.next_number.fetch_add(1, Ordering::SeqCst);
        // Socket names are unique for the whole runner, not per pool: a redeploy starts a new pool while the
        // retired one is still stopping its instances, and its clean-up must not unlink the new socket.
        let unique = SOCKET_SEQ.fetch_add(1, Ordering::Relaxed);
        let socket = self.options.socket_dir.join(format!("{}-{unique}.sock", self.spec.name));
        let _ = std::fs::remove_file(&socket);
        let capture = LineCapture {
            marker: Some(SENTINEL.to_string()),
            echo: self.options.echo_logs.then(|| self.spec.name.clone()),
            max_line: MAX_LOG_LINE,
            max_lines: MAX_LOG_LINES,
        };
        let mut command = INHERITED
            .iter()
            .fold(ProcessSpec::new(&self.binary).inherit_base(), |c, name| c.inherit(name))
            .envs(&self.spec.env)
            .env(wire::ENV_SOCKET, &socket)
            .env(wire::ENV_FUNCTION, &self.spec.name)
            .env("FAAS_MEMORY_MB", self.spec.memory_mb.to_string())
            .input(Input::Pipe)
            .output(Output::Lines(capture));
        if let Some(url) = self.options.services_url.read().expect("services url lock").clone() {
            command = command.env(wire::ENV_SERVICES, url);
        }
        if let Some(url) = &self.options.events_url {
            command = command.env(wire::ENV_EVENTS, url);
        }
        if self.options.memory_limit {
            command = command.limit(Limit::Data, u64::from(self.spec.memory_mb) * 1024 * 1024);
        }
        let mut process = command.spawn().map_err(|e| {
            Error::crash(format!(
                "cannot start the app binary {} for `{}`: {}",
                self.binary.display(),
                self.spec.name,
                e.io()
            ))
        })?;
        let connect = || async { tokio::net::UnixStream::connect(&socket).await.ok() };
        let failed = match process.ready(START_TIMEOUT, connect).await {
            Ok(stream) => match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok((sender, conn)) => {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    tracing::debug!(function = %self.spec.name, instance = number, "started an instance");
                    return Ok(Instance { number, process, sender, socket });
                }
                Err(e) => Error::crash(format!("cannot talk to the process of `{}`: {e}", self.spec.name)),
            },
            Err(NotReady::Exited(exit)) => {
                let lines = log_of(&mut process).until_closed(Duration::from_millis(500)).await;
                Error::crash(format!("function `{}` exited during start-up: {exit}{}", self.spec.name, tail(&lines)))
            }
            Err(NotReady::TimedOut(limit)) => {
                process.kill_and_wait().await;
                let lines = log_of(&mut process).until_closed(Duration::from_millis(500)).await;
                Error::crash(format!(
                    "function `{}` did not start serving within {}{}",
                    self.spec.name,
                    human(limit),
                    tail(&lines)
                ))
            }
        };
        let _ = std::fs::remove_file(&socket);
        Err(failed)
    }
}

fn crash_error(function: &str, status: &str, logs: &[String]) -> Error {
    Error::crash(format!("function `{function}` crashed: {status}{}", tail(logs)))
}

/// The last few log lines, for crash messages.
fn tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    format!("; last log lines:\n{}", faas_supervisor::last_lines(lines, 10).join("\n"))
}
