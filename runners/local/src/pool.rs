//! The process pool: the app binary runs as child processes, one invocation at a time each, like
//! a FaaS invoker. Per function: warm instances are reused and expire when idle, a concurrency
//! limit queues extra calls, the deadline is enforced by killing the process, a crash is isolated
//! to its instance, and stdout/stderr are captured per invocation.
//!
//! The child protocol: the pool starts the binary with `FAAS_LOCAL_SOCKET=<path>` and
//! `FAAS_FUNCTION=<name>`; `faas::serve` in the child serves HTTP/1.1 on that Unix socket:
//! `POST /invoke` with the payload as body and the headers `faas-invocation-id`,
//! `faas-deadline-ms`, `traceparent`, `content-type`. The reply is `200` with the result, or the
//! portable error (`faas_api::wire::error_parts`). After each invocation the child writes
//! `__FAAS_END_OF_INVOCATION__ <id>` on stdout and stderr, so every line before it belongs to that
//! invocation. The child exits when its stdin closes, so children never outlive the pool.
//!
//! The names of that protocol live in [`faas_api::wire`]:
//!
//! ```
//! use faas_api::wire;
//! assert_eq!(wire::ENV_SOCKET, "FAAS_LOCAL_SOCKET");
//! assert_eq!(wire::ENV_FUNCTION, "FAAS_FUNCTION");
//! assert_eq!(wire::INVOCATION_ID, "faas-invocation-id");
//! assert_eq!(wire::DEADLINE_MS, "faas-deadline-ms");
//! assert_eq!(wire::SENTINEL, "__FAAS_END_OF_INVOCATION__");
//! ```
//!
//! See [`FunctionPool`] for running a function's instances.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use faas_api::wire::{self, SENTINEL};
use faas_api::{Error, FunctionSpec, Payload};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::exec::{Gate, Outcome, human};

/// How long a new process may take to start serving before it is killed and the call fails.
///
/// ```
/// assert_eq!(faas_runner_local::pool::START_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug)]
enum LogEvent {
    Line(String),
    End(Stream, String),
    Closed,
}

struct Instance {
    number: u64,
    child: Child,
    _stdin: Option<ChildStdin>,
    sender: SendRequest<Full<Bytes>>,
    logs: mpsc::UnboundedReceiver<LogEvent>,
    socket: PathBuf,
    last_used: Instant,
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
    gate: Gate,
    idle: Mutex<Vec<Instance>>,
    retired: AtomicBool,
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
        let gate = Gate::new(&spec.name, spec.concurrency, options.max_waiting);
        let pool = Arc::new(FunctionPool {
            spec,
            binary,
            options,
            gate,
            idle: Mutex::new(Vec::new()),
            retired: AtomicBool::new(false),
            next_number: AtomicU64::new(1),
        });
        tokio::spawn(reap(Arc::downgrade(&pool)));
        pool
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
                Ok(i) => self.idle.lock().expect("idle lock").push(i),
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
        self.idle.lock().expect("idle lock").len()
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
        self.retired.store(true, Ordering::SeqCst);
        let idle: Vec<Instance> = std::mem::take(&mut *self.idle.lock().expect("idle lock"));
        for i in idle {
            stop(i).await;
        }
    }

    /// Runs one invocation on a warm instance, or a new one (then the outcome is `cold`), waiting
    /// for a free slot under the function's concurrency limit. The instance is killed when
    /// `deadline` passes (a timeout error); a process that dies is a crash error with its exit
    /// status and last log lines, and the next call gets a new process.
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
        let _permit = match self.gate.enter(deadline).await {
            Ok(p) => p,
            Err(e) => return Outcome::refused(e),
        };
        let warm = self.take_live_idle().await;
        let (mut instance, cold) = match warm {
            Some(i) => (i, false),
            None => match self.spawn().await {
                Ok(i) => (i, true),
                Err(e) => return Outcome { result: Err(e), logs: vec![], cold: true },
            },
        };
        let wait = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        let deadline_ms = deadline.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis();
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
                self.release(instance).await;
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
                let logs = self.kill_and_drain(instance).await;
                let error = Error::timeout(format!(
                    "function `{}` timed out after {}",
                    self.spec.name,
                    human(self.spec.timeout)
                ));
                Outcome { result: Err(error), logs, cold }
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
                let logs = collect_until_end(&mut instance.logs, id, Duration::from_secs(2)).await;
                let result = if parts.status == http::StatusCode::OK {
                    Ok(Payload::new(body, wire::content_type(&parts.headers)))
                } else {
                    Err(wire::error_from_response(parts.status, &parts.headers, &body))
                };
                instance.last_used = Instant::now();
                self.release(instance).await;
                Outcome { result, logs, cold }
            }
        }
    }

    /// Pops the most recently used idle instance whose process is still alive.
    async fn take_live_idle(&self) -> Option<Instance> {
        loop {
            let mut instance = self.idle.lock().expect("idle lock").pop()?;
            match instance.child.try_wait() {
                Ok(None) => return Some(instance),
                _ => stop(instance).await,
            }
        }
    }

    async fn release(&self, instance: Instance) {
        if self.retired.load(Ordering::SeqCst) {
            stop(instance).await;
        } else {
            self.idle.lock().expect("idle lock").push(instance);
        }
    }

    async fn kill_and_drain(&self, mut instance: Instance) -> Vec<String> {
        let _ = instance.child.start_kill();
        let _ = instance.child.wait().await;
        let _ = std::fs::remove_file(&instance.socket);
        collect_until_closed(&mut instance.logs, Duration::from_millis(500)).await
    }

    async fn crashed(&self, mut instance: Instance) -> (String, Vec<String>) {
        let status = match tokio::time::timeout(Duration::from_secs(2), instance.child.wait()).await {
            Ok(Ok(s)) => describe_exit(s),
            _ => {
                let _ = instance.child.start_kill();
                let _ = instance.child.wait().await;
                "the connection to the process broke; the process was killed".to_string()
            }
        };
        let _ = std::fs::remove_file(&instance.socket);
        let logs = collect_until_closed(&mut instance.logs, Duration::from_millis(500)).await;
        (status, logs)
    }

    async fn spawn(&self) -> Result<Instance, Error> {
        if self.retired.load(Ordering::SeqCst) {
            return Err(Error::unavailable(format!("function `{}` was removed or replaced", self.spec.name)));
        }
        let number = self.next_number.fetch_add(1, Ordering::SeqCst);
        // Socket names are unique for the whole runner, not per pool: a redeploy starts a new pool while the
        // retired one is still stopping its instances, and its clean-up must not unlink the new socket.
        let unique = SOCKET_SEQ.fetch_add(1, Ordering::Relaxed);
        let socket = self.options.socket_dir.join(format!("{}-{unique}.sock", self.spec.name));
        let _ = std::fs::remove_file(&socket);
        let mut cmd = Command::new(&self.binary);
        for var in [
            "AWS_LAMBDA_RUNTIME_API",
            "FUNCTIONS_CUSTOMHANDLER_PORT",
            "FUNCTION_TARGET",
            "__OW_API_HOST",
            wire::ENV_DESCRIBE,
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(&self.spec.env)
            .env(wire::ENV_SOCKET, &socket)
            .env(wire::ENV_FUNCTION, &self.spec.name)
            .env("FAAS_MEMORY_MB", self.spec.memory_mb.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(url) = self.options.services_url.read().expect("services url lock").clone() {
            cmd.env(wire::ENV_SERVICES, url);
        }
        if let Some(url) = &self.options.events_url {
            cmd.env(wire::ENV_EVENTS, url);
        }
        if self.options.memory_limit {
            let bytes = u64::from(self.spec.memory_mb) * 1024 * 1024;
            // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
                    if libc::setrlimit(libc::RLIMIT_DATA, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| {
            Error::crash(format!("cannot start the app binary {} for `{}`: {e}", self.binary.display(), self.spec.name))
        })?;
        let (tx, mut logs) = mpsc::unbounded_channel();
        let prefix = self.options.echo_logs.then(|| self.spec.name.clone());
        if let Some(out) = child.stdout.take() {
            tokio::spawn(pump(out, Stream::Stdout, tx.clone(), prefix.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(pump(err, Stream::Stderr, tx, prefix));
        }
        let stdin = child.stdin.take();
        let started = Instant::now();
        let mut pause = Duration::from_micros(200);
        let stream = loop {
            if let Ok(Some(status)) = child.try_wait() {
                let lines = collect_until_closed(&mut logs, Duration::from_millis(500)).await;
                return Err(Error::crash(format!(
                    "function `{}` exited during start-up: {}{}",
                    self.spec.name,
                    describe_exit(status),
                    tail(&lines)
                )));
            }
            if let Ok(s) = tokio::net::UnixStream::connect(&socket).await {
                break s;
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.start_kill();
                let _ = child.wait().await;
                let lines = collect_until_closed(&mut logs, Duration::from_millis(500)).await;
                return Err(Error::crash(format!(
                    "function `{}` did not start serving within {}{}",
                    self.spec.name,
                    human(START_TIMEOUT),
                    tail(&lines)
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(10));
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::crash(format!("cannot talk to the process of `{}`: {e}", self.spec.name)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        tracing::debug!(function = %self.spec.name, instance = number, "started an instance");
        Ok(Instance { number, child, _stdin: stdin, sender, logs, socket, last_used: Instant::now() })
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
    let from = lines.len().saturating_sub(10);
    format!("; last log lines:\n{}", lines[from..].join("\n"))
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("the process exited with status {code}"),
        (None, Some(sig)) => {
            let name = match sig {
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGBUS => " (SIGBUS)",
                _ => "",
            };
            format!("the process was killed by signal {sig}{name}")
        }
        _ => "the process ended".to_string(),
    }
}

async fn stop(mut instance: Instance) {
    let _ = instance.child.start_kill();
    let _ = instance.child.wait().await;
    let _ = std::fs::remove_file(&instance.socket);
    tracing::debug!(instance = instance.number, "stopped an instance");
}

/// Reads one output stream line by line, turning sentinel lines into end markers.
async fn pump(
    stream: impl AsyncRead + Unpin,
    which: Stream,
    tx: mpsc::UnboundedSender<LogEvent>,
    echo: Option<String>,
) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        buf.truncate(MAX_LOG_LINE);
        let line = String::from_utf8_lossy(&buf).into_owned();
        let (text, end) = match line.find(SENTINEL) {
            Some(at) => (line[..at].to_string(), Some(line[at + SENTINEL.len()..].trim().to_string())),
            None => (line, None),
        };
        if !text.is_empty() || end.is_none() {
            if let Some(name) = &echo {
                eprintln!("[{name}] {text}");
            }
            let _ = tx.send(LogEvent::Line(text));
        }
        if let Some(id) = end {
            let _ = tx.send(LogEvent::End(which, id));
        }
    }
    let _ = tx.send(LogEvent::Closed);
}

/// Collects lines until both streams have marked the end of invocation `id`.
async fn collect_until_end(rx: &mut mpsc::UnboundedReceiver<LogEvent>, id: &str, limit: Duration) -> Vec<String> {
    let mut lines = VecDeque::new();
    let (mut out_done, mut err_done) = (false, false);
    let _ = tokio::time::timeout(limit, async {
        while !(out_done && err_done) {
            match rx.recv().await {
                Some(LogEvent::Line(l)) => push(&mut lines, l),
                Some(LogEvent::End(s, got)) if got == id => match s {
                    Stream::Stdout => out_done = true,
                    Stream::Stderr => err_done = true,
                },
                Some(LogEvent::End(..)) => {}
                Some(LogEvent::Closed) | None => break,
            }
        }
    })
    .await;
    lines.into()
}

/// Collects lines until both streams are closed (the process is gone).
async fn collect_until_closed(rx: &mut mpsc::UnboundedReceiver<LogEvent>, limit: Duration) -> Vec<String> {
    let mut lines = VecDeque::new();
    let mut closed = 0;
    let _ = tokio::time::timeout(limit, async {
        while closed < 2 {
            match rx.recv().await {
                Some(LogEvent::Line(l)) => push(&mut lines, l),
                Some(LogEvent::End(..)) => {}
                Some(LogEvent::Closed) => closed += 1,
                None => break,
            }
        }
    })
    .await;
    lines.into()
}

fn push(lines: &mut VecDeque<String>, line: String) {
    if lines.len() == MAX_LOG_LINES {
        lines.pop_front();
    }
    lines.push_back(line);
}

/// Stops instances idle for longer than the idle timeout; ends with the pool.
async fn reap(pool: Weak<FunctionPool>) {
    loop {
        let period = match pool.upgrade() {
            Some(p) => (p.options.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)),
            None => return,
        };
        tokio::time::sleep(period).await;
        let Some(p) = pool.upgrade() else { return };
        if p.retired.load(Ordering::SeqCst) {
            return;
        }
        let expired: Vec<Instance> = {
            let mut idle = p.idle.lock().expect("idle lock");
            let (old, keep): (Vec<Instance>, Vec<Instance>) =
                std::mem::take(&mut *idle).into_iter().partition(|i| i.last_used.elapsed() >= p.options.idle_timeout);
            *idle = keep;
            old
        };
        for i in expired {
            stop(i).await;
        }
    }
}
