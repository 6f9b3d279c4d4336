//! The invoker: runs an activation of an action in one of its warm containers (or a new one,
//! a cold start), and builds its record.
//!
//! A container is what the action's runtime keeps between activations:
//! - dockerskeleton ([`Protocol::Skeleton`]): the prepared code directory; each activation
//!   spawns `exec` as apache/openwhisk-runtime-docker core/actionProxy/actionproxy.py does
//!   (`run`): the parameters as `argv[1]` when shorter than 131071 bytes and always on stdin,
//!   the last stdout line the result, the rest of stdout and stderr the logs;
//! - ActionLoop ([`Protocol::ActionLoop`]): one `exec` process, started as the Go proxy starts
//!   it (apache/openwhisk-runtime-go openwhisk/executor.go `Start`): only the `__OW_*`
//!   variables, `__OW_WAIT_FOR_ACK` set, `{"ok":true}` awaited on fd 3; each activation writes
//!   the `/run` body as one line on stdin and reads one line on fd 3 (`Interact`).
//!
//! The proxies write the sentinel `XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX` on stdout and stderr
//! after each activation so that the invoker can split the container's log stream (executor.go
//! `OutputGuard`). Here the emulator plays the proxy and reads the output itself: a
//! dockerskeleton's ends with its process, an ActionLoop container's output goes into a file that
//! holds everything the child wrote before it answered on fd 3, so no sentinel is needed.
//!
//! The invoker's side follows apache/openwhisk core/invoker/.../ContainerProxy.scala (the
//! environment of a run, the annotations of the record) and common/scala/.../Container.scala
//! (a run that takes the action's timeout is a developer error and the container is destroyed).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;

use faas_supervisor::{FileCapture, GateError, Instance, Limit, Output, Pipe, Process, ProcessSpec};

use crate::activations::{log_line, Record, Response, Status};
use crate::entities::{Action, Exec, Protocol};
use crate::error::transaction_id;
use crate::Shared;

/// Largest result (`whisk.activation.payload.max = 1 m`); a longer answer is truncated.
pub(crate) const MAX_RESULT: usize = 1024 * 1024;
/// `MAX_ARG_STRLEN` (linux/binfmts.h): longer parameters go on stdin only (actionproxy.py).
const MAX_ARG: usize = 131071;
/// The Go proxy release whose behaviour the ActionLoop side follows (openwhisk/version.go).
const PROXY_VERSION: &str = "1.17.1";
/// `Messages.logWarningDeveloperError`, added when a run ended without the proxy's sentinel.
const LOG_WARNING: &str = "The action did not initialize or run as expected. Log data might be missing.";
/// The dockerskeleton's answer to output that is not a JSON object or array (actionproxy.py `run`).
const NOT_A_DICTIONARY: &str = "The action did not return a dictionary or array.";
/// `PATH` of the dockerskeleton image (its actionproxy passes its own environment on).
const SKELETON_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A warm container of one action: a handle, shared by the activations running in it at once.
/// OpenWhisk sends a container up to the action's `concurrency` limit of activations at a time
/// (ContainerPool.scala, `ContainerData.activeActivationCount` against `maxConcurrent`): while
/// it has room, a handle stays on the pool's shelf for the next activation to join.
#[derive(Clone)]
pub(crate) struct Container(Arc<ContainerState>);

struct ContainerState {
    kind: Kind,
    /// Activations running in it now.
    running: AtomicUsize,
    /// Whether a handle of it is on the pool's shelf (at most one is).
    shelved: AtomicBool,
}

enum Kind {
    Skeleton { dir: PathBuf },
    Loop(Box<LoopContainer>),
}

/// A running ActionLoop `exec`. The proxy hands it one activation at a time (executor.go
/// `Interact` under the proxy's lock), so activations sharing the container take turns on its
/// pipes.
pub(crate) struct LoopContainer {
    process: Process,
    pipes: tokio::sync::Mutex<(pipe::Sender, BufReader<pipe::Receiver>)>,
    broken: AtomicBool,
}

impl Container {
    fn new(kind: Kind) -> Container {
        Container(Arc::new(ContainerState { kind, running: AtomicUsize::new(0), shelved: AtomicBool::new(false) }))
    }

    /// An activation starts in it (just taken from the shelf, or new); returns how many run now.
    fn join(&self) -> usize {
        self.0.shelved.store(false, Ordering::SeqCst);
        self.0.running.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// An activation ended in it.
    fn leave(&self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }

    /// Claims the one place on the shelf: `false` when a handle is there already.
    fn claim_shelf(&self) -> bool {
        !self.0.shelved.swap(true, Ordering::SeqCst)
    }
}

impl Instance for Container {
    fn usable(&self) -> bool {
        match &self.0.kind {
            Kind::Skeleton { dir } => dir.join("exec").is_file(),
            Kind::Loop(c) => !c.broken.load(Ordering::SeqCst) && c.process.is_running(),
        }
    }
}

/// The facts of one activation the action's process sees.
struct RunEnv {
    namespace: String,
    action_name: String,
    action_version: String,
    activation_id: String,
    transaction_id: String,
    deadline: String,
    api_key: Option<String>,
}

impl RunEnv {
    /// The `/run` body's keys besides `value` (ContainerProxy.scala `environment`, `authEnvironment`).
    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("namespace", self.namespace.clone()),
            ("action_name", self.action_name.clone()),
            ("action_version", self.action_version.clone()),
            ("activation_id", self.activation_id.clone()),
            ("transaction_id", self.transaction_id.clone()),
            ("deadline", self.deadline.clone()),
        ];
        if let Some(key) = &self.api_key {
            fields.push(("api_key", key.clone()));
        }
        fields
    }

    /// `__OW_<KEY>` for each field, as the proxies export them.
    fn variables(&self) -> Vec<(String, String)> {
        self.fields().into_iter().map(|(k, v)| (format!("__OW_{}", k.to_uppercase()), v)).collect()
    }
}

/// One log line: when it was read, its stream, its text.
type LogLine = (chrono::DateTime<chrono::Utc>, &'static str, String);

/// How one run ended.
struct Outcome {
    response: Response,
    logs: Vec<LogLine>,
    /// The container can take another activation.
    keep: bool,
}

/// The run's output split into lines, all stamped now.
/// What an ActionLoop child wrote since the last read: its stdout lines, then its stderr lines.
fn loop_logs(process: &Process) -> Vec<LogLine> {
    let take = |f: Option<&faas_supervisor::FileLog>| f.map(|f| f.take()).unwrap_or_default();
    let mut logs = lines_of(&take(process.output_file()), "stdout");
    logs.extend(lines_of(&take(process.error_file()), "stderr"));
    logs
}

fn lines_of(text: &str, stream: &'static str) -> Vec<LogLine> {
    let now = chrono::Utc::now();
    text.lines().map(|l| (now, stream, l.to_string())).collect()
}

fn developer_error(message: &str) -> Response {
    Response::error(Status::DeveloperError, json!(message), None)
}

/// `Messages.timedoutActivation`.
fn timed_out(timeout: Duration, init: bool) -> Response {
    let tail = if init { " during initialization." } else { "." };
    developer_error(&format!("The action exceeded its time limits of {} milliseconds{tail}", timeout.as_millis()))
}

/// What the invoker makes of a proxy's answer (ActivationResult.scala `processRunResponseContent`):
/// `ok` is the proxy's HTTP 200, `body` its entity, `length` the entity's full length.
fn interpret(ok: bool, body: &[u8], length: usize) -> Response {
    if length > MAX_RESULT {
        let trunk = String::from_utf8_lossy(&body[..body.len().min(MAX_RESULT)]).into_owned();
        let message = format!(
            "The action produced a response that exceeded the allowed length: {length} > {MAX_RESULT} bytes. The truncated response was: {trunk}"
        );
        return Response::error(Status::ApplicationError, json!(message), Some(length));
    }
    let text = String::from_utf8_lossy(body);
    let invalid = || {
        let message = if text.is_empty() {
            "The action did not produce a valid JSON or JSON Array response.".to_string()
        } else {
            format!("The action did not produce a valid JSON or JSON Array response: {text}")
        };
        Response::error(Status::DeveloperError, json!(message), Some(length))
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => match (ok, fields.get("error")) {
            (true, Some(error)) => Response::error(Status::ApplicationError, error.clone(), Some(length)),
            (true, None) => Response::success(Value::Object(fields), Some(length)),
            (false, Some(error)) => Response::error(Status::DeveloperError, error.clone(), Some(length)),
            (false, None) => invalid(),
        },
        Ok(array @ Value::Array(_)) if ok => Response::success(array, Some(length)),
        _ => invalid(),
    }
}

/// A proxy's own error answer (`{"error": message}`, non-200) as the invoker reads it.
fn proxy_error(message: &str) -> Response {
    let body = serde_json::to_vec(&json!({ "error": message })).unwrap_or_default();
    interpret(false, &body, body.len())
}

/// Runs an activation of `action` (or of the sequence it is) with `params` and stores its
/// record. `cause` is the sequence's activation when this is one of its components.
pub(crate) fn activate(
    shared: Arc<Shared>,
    action: Arc<Action>,
    params: Value,
    activation_id: String,
    cause: Option<String>,
) -> BoxFuture<'static, Arc<Record>> {
    Box::pin(async move {
        let record = match &action.exec {
            Exec::Sequence { .. } => run_sequence(&shared, &action, params, activation_id, cause).await,
            Exec::Native { .. } => run_native(&shared, &action, params, activation_id, cause).await,
        };
        if shared.options.echo_logs {
            for line in &record.logs {
                eprintln!("[{}] {line}", record.key);
            }
        }
        shared.activations.lock().unwrap().insert(record)
    })
}

/// The record's annotations (ContainerProxy.scala `constructWhiskActivation`).
fn annotations(
    shared: &Shared,
    action: &Action,
    timeout: bool,
    caused_by_sequence: bool,
    init: Option<u128>,
    wait: u128,
) -> Vec<Value> {
    let ns = &shared.options.namespace;
    let mut list = vec![
        json!({ "key": "limits", "value": action.limits.json() }),
        json!({ "key": "path", "value": action.name.path(ns) }),
        json!({ "key": "kind", "value": action.exec.kind() }),
        json!({ "key": "timeout", "value": timeout }),
    ];
    if caused_by_sequence {
        list.push(json!({ "key": "causedBy", "value": "sequence" }));
    }
    if let Some(init) = init {
        list.push(json!({ "key": "initTime", "value": init as u64 }));
    }
    list.push(json!({ "key": "waitTime", "value": wait as u64 }));
    list
}

/// The stored form of the log lines: formatted, cut at the action's log limit with OpenWhisk's
/// notice (`Messages.truncateLogs`).
fn format_logs(lines: Vec<LogLine>, limit_mb: u64) -> Vec<String> {
    let limit = (limit_mb * 1024 * 1024) as usize;
    let mut used = 0usize;
    let mut out = Vec::new();
    for (time, stream, text) in lines {
        used += text.len();
        if used > limit {
            out.push(log_line(
                chrono::Utc::now(),
                "stderr",
                &format!("Logs were truncated because the total bytes size exceeds the limit of {limit} bytes."),
            ));
            break;
        }
        out.push(log_line(time, stream, &text));
    }
    out
}

fn record(shared: &Shared, action: &Action, id: String, cause: Option<String>, start: i64, end: i64) -> Record {
    let ns = &shared.options.namespace;
    Record {
        activation_id: id,
        namespace: action.name.namespace_path(ns),
        name: action.name.name.clone(),
        key: action.name.key(),
        version: action.version.clone(),
        subject: ns.clone(),
        start,
        end: Some(end),
        duration: Some(end - start),
        cause,
        response: Response::success(json!({}), None),
        logs: Vec::new(),
        annotations: Vec::new(),
    }
}

async fn run_native(shared: &Arc<Shared>, action: &Action, params: Value, id: String, cause: Option<String>) -> Record {
    let Exec::Native { protocol, dir, .. } = &action.exec else {
        unreachable!("run_native is called for native actions")
    };
    let ns = shared.options.namespace.clone();
    let (init_env, params) = partition_init(params, &action.init_parameter_names());
    let accepted = Instant::now();
    let timeout = Duration::from_millis(action.limits.timeout);
    let caused_by_sequence = cause.is_some();
    // ContainerProxy.scala: the deadline is computed when the run (or init) is sent, as a string.
    let env = || RunEnv {
        namespace: ns.clone(),
        action_name: action.name.qualified(&ns),
        action_version: action.version.clone(),
        activation_id: id.clone(),
        transaction_id: transaction_id(),
        deadline: (chrono::Utc::now().timestamp_millis() + action.limits.timeout as i64).to_string(),
        api_key: action.provides_api_key().then(|| shared.options.auth.clone()),
    };
    let pool = action.containers.clone();
    let mut lease = match pool.lease(Duration::ZERO).await {
        Ok(lease) => lease,
        Err(e) => {
            let now = chrono::Utc::now().timestamp_millis();
            let mut r = record(shared, action, id, cause, now, now);
            let message = match e {
                GateError::Closed => "Action could not be found or may have been deleted.",
                _ => "Too many concurrent requests in flight.",
            };
            r.response = Response::error(Status::WhiskError, json!(message), None);
            r.annotations =
                annotations(shared, action, false, caused_by_sequence, None, accepted.elapsed().as_millis());
            return r;
        }
    };
    let start_ms = chrono::Utc::now().timestamp_millis();
    let wait = accepted.elapsed().as_millis();
    let mut logs = Vec::new();
    let (container, init) = match lease.take_warm() {
        Some(c) => (c, None),
        None => {
            let init_start = Instant::now();
            match start_container(shared, action, *protocol, dir, &env(), &init_env, timeout).await {
                Ok((c, mut init_logs)) => {
                    logs.append(&mut init_logs);
                    (c, Some(init_start.elapsed()))
                }
                Err(failure) => {
                    let end = chrono::Utc::now().timestamp_millis();
                    let mut r = record(shared, action, id, cause, start_ms, end);
                    r.response = failure.response;
                    r.logs = format_logs(failure.logs, action.limits.logs);
                    r.annotations = annotations(
                        shared,
                        action,
                        failure.timed_out,
                        caused_by_sequence,
                        Some(init_start.elapsed().as_millis()),
                        wait,
                    );
                    return r;
                }
            }
        }
    };
    // Room for more: the next activation may join this one in the container.
    if container.join() < action.limits.concurrency as usize && container.claim_shelf() {
        pool.add_idle(container.clone());
    }
    // The run's time limit is what is left of the action's timeout after the init
    // (ContainerProxy.scala passes one actionTimeout to both).
    let run_timeout = timeout.saturating_sub(init.unwrap_or_default()).max(Duration::from_millis(1));
    let run_env = env();
    let mut outcome = match &container.0.kind {
        Kind::Skeleton { dir } => run_skeleton(shared, action, dir, &params, &run_env, run_timeout, timeout).await,
        Kind::Loop(c) => run_loop(c, &params, &run_env, run_timeout, timeout).await,
    };
    container.leave();
    logs.append(&mut outcome.logs);
    let timed_out_now = outcome.response == timed_out(timeout, false);
    if outcome.keep && container.claim_shelf() {
        lease.give_back(container);
    } else {
        // Broken (a shelved handle of it is found unusable and dropped), or already on the shelf.
        drop(container);
    }
    let end = chrono::Utc::now().timestamp_millis();
    let mut r = record(shared, action, id, cause, start_ms, end);
    r.response = outcome.response;
    r.logs = format_logs(logs, action.limits.logs);
    r.annotations = annotations(shared, action, timed_out_now, caused_by_sequence, init.map(|d| d.as_millis()), wait);
    r
}

/// Why a container could not be started.
struct InitFailure {
    response: Response,
    logs: Vec<LogLine>,
    timed_out: bool,
}

fn init_failure(response: Response, logs: Vec<LogLine>) -> InitFailure {
    InitFailure { response, logs, timed_out: false }
}

async fn start_container(
    shared: &Shared,
    action: &Action,
    protocol: Protocol,
    dir: &std::path::Path,
    env: &RunEnv,
    init_env: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<(Container, Vec<LogLine>), InitFailure> {
    let exec = dir.join("exec");
    match protocol {
        Protocol::Skeleton => {
            // actionproxy.py `verify`: the binary exists and is executable; else /init answers
            // 502 with this message.
            use std::os::unix::fs::PermissionsExt;
            let ok = std::fs::metadata(&exec).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if !ok {
                return Err(init_failure(
                    proxy_error("The action failed to generate or locate a binary. See logs for details."),
                    vec![],
                ));
            }
            Ok((Container::new(Kind::Skeleton { dir: dir.to_path_buf() }), vec![]))
        }
        // actionproxy.py ignores the /init env; the ActionLoop proxy makes it the process's.
        Protocol::ActionLoop => start_loop(shared, action, dir, env, init_env, timeout).await,
    }
}

/// Starts an ActionLoop `exec` and waits for its acknowledgement (executor.go `Start` with
/// `waitForAck`; initHandler.go with `OW_LOG_INIT_ERROR` set, as the actionloop images set it:
/// the reason goes to the logs, the answer says to look there).
async fn start_loop(
    shared: &Shared,
    action: &Action,
    dir: &std::path::Path,
    env: &RunEnv,
    init_env: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<(Container, Vec<LogLine>), InitFailure> {
    let log_path = shared.state_dir.join("logs").join(format!("{}.log", uuid::Uuid::new_v4().simple()));
    let keep = (action.limits.logs as usize * 1024 * 1024).max(64 * 1024);
    // actionProxy.go `SetEnv`: the child gets only these (no PATH), init env first.
    let mut vars: BTreeMap<String, String> = init_env.clone();
    vars.extend(env.variables());
    vars.insert("__OW_API_HOST".into(), shared.base_url.clone());
    vars.insert("__OW_WAIT_FOR_ACK".into(), "1".into());
    vars.insert("__OW_PROXY_VERSION".into(), PROXY_VERSION.into());
    let spec = ProcessSpec::new(dir.join("exec"))
        .current_dir(dir)
        .envs(&vars)
        .limit(Limit::Data, action.limits.memory << 20)
        .pipe(Pipe::ToChild(0))
        .pipe(Pipe::FromChild(3))
        // The proxy copies the child's stdout and stderr to its own, and the invoker reads them
        // as two streams (`DockerContainer.logs`: each line tagged with its stream).
        .output(Output::Files {
            stderr: FileCapture { path: log_path.with_extension("stderr"), keep, truncate_at: 8 * keep as u64 },
            stdout: FileCapture { path: log_path, keep, truncate_at: 8 * keep as u64 },
        });
    let cannot_start = "Cannot start action. Check logs for details.";
    let mut process = match spec.spawn() {
        Ok(p) => p,
        Err(e) => {
            // Start fails → "command exited" (executor.go `Start`).
            let logs = lines_of(&format!("{e}\ncommand exited"), "stderr");
            return Err(init_failure(proxy_error(cannot_start), logs));
        }
    };
    let (Some(stdin), Some(results)) = (process.take_writer(0), process.take_reader(3)) else {
        return Err(init_failure(proxy_error(cannot_start), vec![]));
    };
    let mut results = BufReader::new(results);
    let ack = async {
        let mut line = Vec::new();
        match (&mut results).take(64 * 1024).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => Err("Command exited abruptly during initialization."),
            Ok(_) => match serde_json::from_slice::<Value>(&line) {
                Ok(v) if v["ok"] == Value::Bool(true) => Ok(()),
                _ => Err("The action did not initialize properly."),
            },
        }
    };
    let exited = process.wait();
    let outcome = tokio::select! {
        biased;
        r = ack => r,
        _ = exited => Err("Command exited abruptly during initialization."),
        _ = tokio::time::sleep(timeout) => {
            process.kill();
            let mut logs = loop_logs(&process);
            logs.push((chrono::Utc::now(), "stderr", LOG_WARNING.to_string()));
            return Err(InitFailure { response: timed_out(timeout, true), logs, timed_out: true });
        }
    };
    let mut logs = loop_logs(&process);
    match outcome {
        Ok(()) => {
            let pipes = tokio::sync::Mutex::new((stdin, results));
            Ok((
                Container::new(Kind::Loop(Box::new(LoopContainer { process, pipes, broken: AtomicBool::new(false) }))),
                logs,
            ))
        }
        Err(reason) => {
            process.kill();
            logs.push((chrono::Utc::now(), "stderr", reason.to_string()));
            Err(init_failure(proxy_error(cannot_start), logs))
        }
    }
}

/// Reads one line of at most `max` bytes (the rest of a longer line is read and dropped);
/// returns it without the newline and the line's full length, or `None` at the end of file.
async fn read_line_limited(
    reader: &mut BufReader<pipe::Receiver>,
    max: usize,
) -> std::io::Result<Option<(Vec<u8>, usize)>> {
    let mut line = Vec::new();
    let mut length = 0usize;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if length == 0 { None } else { Some((line, length)) });
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(at) => (&buf[..at], Some(at + 1)),
            None => (buf, None),
        };
        let room = (max + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        length += chunk.len();
        let consumed = done.unwrap_or(buf.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(Some((line, length)));
        }
    }
}

/// One activation on an ActionLoop container (executor.go `Interact`, runHandler.go).
async fn run_loop(c: &LoopContainer, params: &Value, env: &RunEnv, timeout: Duration, limit: Duration) -> Outcome {
    let mut body = Map::new();
    body.insert("value".into(), params.clone());
    for (k, v) in env.fields() {
        body.insert(k.into(), Value::String(v));
    }
    // Compact JSON has no raw newlines (runHandler.go strips them anyway).
    let mut line = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
    line.push(b'\n');
    let started = Instant::now();
    let process = &c.process;
    // The turn on the pipes counts against the activation's time limit, as waiting in the
    // proxy does.
    let mut pipes = match tokio::time::timeout(timeout, c.pipes.lock()).await {
        Ok(pipes) => pipes,
        Err(_) => {
            process.kill();
            c.broken.store(true, Ordering::SeqCst);
            let logs = vec![(chrono::Utc::now(), "stderr", LOG_WARNING.to_string())];
            return Outcome { response: timed_out(limit, false), logs, keep: false };
        }
    };
    let timeout = timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
    let (stdin, results) = &mut *pipes;
    let exchange = async {
        stdin.write_all(&line).await?;
        read_line_limited(results, MAX_RESULT).await
    };
    let exited = process.wait();
    enum Answer {
        Line(std::io::Result<Option<(Vec<u8>, usize)>>),
        Exited,
        TimedOut,
    }
    let answer = tokio::select! {
        biased;
        r = exchange => Answer::Line(r),
        _ = exited => Answer::Exited,
        _ = tokio::time::sleep(timeout) => Answer::TimedOut,
    };
    if let Answer::TimedOut = answer {
        // Container.scala: a run that takes the whole timeout is a developer error, and
        // ContainerProxy destroys the container.
        process.kill();
        c.broken.store(true, Ordering::SeqCst);
        let mut logs = loop_logs(process);
        logs.push((chrono::Utc::now(), "stderr", LOG_WARNING.to_string()));
        return Outcome { response: timed_out(limit, false), logs, keep: false };
    }
    let mut logs = loop_logs(process);
    match answer {
        Answer::Line(Ok(Some((line, length)))) => {
            // runHandler.go: anything but a JSON object or array is a 502.
            let parsed = serde_json::from_slice::<Value>(&line);
            let response = if length > MAX_RESULT || matches!(parsed, Ok(Value::Object(_) | Value::Array(_))) {
                interpret(true, &line, length)
            } else {
                proxy_error(NOT_A_DICTIONARY)
            };
            Outcome { response, logs, keep: true }
        }
        _ => {
            // The child exited (or closed fd 3): runHandler.go answers 400 "command exited".
            c.broken.store(true, Ordering::SeqCst);
            process.kill();
            logs.push((chrono::Utc::now(), "stderr", LOG_WARNING.to_string()));
            Outcome { response: proxy_error("command exited"), logs, keep: false }
        }
    }
}

/// One activation on a dockerskeleton container: a new `exec` process (actionproxy.py `run`).
async fn run_skeleton(
    shared: &Shared,
    action: &Action,
    dir: &std::path::Path,
    params: &Value,
    env: &RunEnv,
    timeout: Duration,
    limit: Duration,
) -> Outcome {
    let input = serde_json::to_string(params).unwrap_or_else(|_| "{}".into());
    let log_path = shared.state_dir.join("logs").join(format!("{}.err", env.activation_id));
    let keep = (action.limits.logs as usize * 1024 * 1024).max(64 * 1024);
    let mut spec = ProcessSpec::new(dir.join("exec"))
        .current_dir(dir)
        // The image's environment, the container's __OW_API_HOST, and the run's __OW_* (`env`).
        .env("PATH", SKELETON_PATH)
        .env("LANG", "C.UTF-8")
        .env("HOSTNAME", "dockerskeleton")
        .env("__OW_API_HOST", &shared.base_url)
        .envs(env.variables())
        .limit(Limit::Data, action.limits.memory << 20)
        .pipe(Pipe::ToChild(0))
        .pipe(Pipe::FromChild(1))
        .output(Output::File(FileCapture { path: log_path, keep, truncate_at: u64::MAX }));
    if input.len() <= MAX_ARG {
        spec = spec.arg(&input);
    }
    let mut process = match spec.spawn() {
        Ok(p) => p,
        Err(e) => {
            // Popen failed: actionproxy.py `error(e)` prints it and answers 502.
            return Outcome {
                response: proxy_error(NOT_A_DICTIONARY),
                logs: lines_of(&e.to_string(), "stdout"),
                keep: true,
            };
        }
    };
    let (Some(mut stdin), Some(mut stdout)) = (process.take_writer(0), process.take_reader(1)) else {
        return Outcome { response: proxy_error(NOT_A_DICTIONARY), logs: vec![], keep: true };
    };
    let cap = MAX_RESULT + keep + 64 * 1024;
    let feed = async move {
        // A child that does not read its stdin closes it: that is not an error.
        let _ = stdin.write_all(input.as_bytes()).await;
        drop(stdin);
    };
    let collect = async move {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.len() > cap {
                        // Keep the newest bytes: the result is the last line.
                        out.drain(..out.len() - cap);
                    }
                }
            }
        }
        out
    };
    let run = async {
        let ((), out) = tokio::join!(feed, collect);
        process.wait().await;
        out
    };
    let stdout = tokio::select! {
        out = run => out,
        _ = tokio::time::sleep(timeout) => {
            process.kill();
            let mut logs = lines_of(&process.output_file().map(|f| f.take()).unwrap_or_default(), "stderr");
            logs.push((chrono::Utc::now(), "stderr", LOG_WARNING.to_string()));
            // The container is destroyed: the next activation is a cold start.
            return Outcome { response: timed_out(limit, false), logs, keep: false };
        }
    };
    let stderr = process.output_file().map(|f| f.take()).unwrap_or_default();
    let o = String::from_utf8_lossy(&stdout);
    // actionproxy.py: the last line of stdout, even if empty, is the result; the rest are logs.
    let search = o.strip_suffix('\n').unwrap_or(&o);
    let (log_text, last) = match search.rfind('\n') {
        Some(at) => (&o[..at + 1], o[at + 1..].trim()),
        None => ("", o.trim()),
    };
    let mut logs = lines_of(log_text, "stdout");
    logs.extend(lines_of(&stderr, "stderr"));
    let response = match serde_json::from_str::<Value>(last) {
        Ok(result @ (Value::Object(_) | Value::Array(_))) => {
            let body = serde_json::to_vec(&result).unwrap_or_default();
            let length = if last.len() > MAX_RESULT { last.len() } else { body.len() };
            interpret(true, if length > MAX_RESULT { last.as_bytes() } else { &body[..] }, length)
        }
        _ => {
            // `error(lastLine)`: the line is printed, the answer is a 502.
            logs.push((chrono::Utc::now(), "stdout", last.to_string()));
            proxy_error(NOT_A_DICTIONARY)
        }
    };
    Outcome { response, logs, keep: true }
}

/// Runs a sequence (apache/openwhisk core/controller/.../actions/SequenceActions.scala): each
/// component's result is the next one's parameters; an error ends it; the record's logs list the
/// components' activation ids and its duration is the sum of theirs.
async fn run_sequence(
    shared: &Arc<Shared>,
    action: &Action,
    params: Value,
    id: String,
    cause: Option<String>,
) -> Record {
    let Exec::Sequence { components } = &action.exec else { unreachable!("run_sequence is called for sequences") };
    let start = chrono::Utc::now().timestamp_millis();
    let mut value = params;
    let mut ids = Vec::new();
    let mut duration = 0i64;
    let mut response = Response::success(json!({}), None);
    for component in components {
        let next = shared.entities.lock().unwrap().actions.get(&component.key()).cloned();
        let Some(next) = next else {
            response = Response::error(Status::ApplicationError, json!("Sequence component does not exist."), None);
            break;
        };
        let component_id = crate::controller::activation_id();
        ids.push(component_id.clone());
        let input = merge_parameters(&next, value);
        let done = activate(shared.clone(), next, input, component_id, Some(id.clone())).await;
        duration += done.duration.unwrap_or(0);
        response = done.response.clone();
        if response.status != Status::Success {
            break;
        }
        value = response.result.clone().unwrap_or_else(|| json!({}));
    }
    let end = chrono::Utc::now().timestamp_millis();
    let ns = &shared.options.namespace;
    let mut r = record(shared, action, id, cause.clone(), start, end);
    r.duration = Some(duration);
    r.response = response;
    r.logs = ids;
    let mut list = Vec::new();
    if cause.is_none() {
        list.push(json!({ "key": "topmost", "value": true }));
    }
    list.push(json!({ "key": "path", "value": action.name.path(ns) }));
    list.push(json!({ "key": "kind", "value": "sequence" }));
    list.push(json!({ "key": "limits", "value": action.limits.json() }));
    list.push(json!({ "key": "waitTime", "value": 0 }));
    r.annotations = list;
    r
}

/// Splits the `init` parameters out of an activation's parameters, as the invoker does: they
/// become the container's `/init` environment, as strings (ContainerProxy.scala: strings as
/// they are, null as empty, anything else as compact JSON), and the run gets the rest.
fn partition_init(params: Value, names: &std::collections::BTreeSet<String>) -> (BTreeMap<String, String>, Value) {
    let Value::Object(mut fields) = params else { return (BTreeMap::new(), params) };
    let mut env = BTreeMap::new();
    for name in names {
        if let Some(v) = fields.remove(name) {
            let text = match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            env.insert(name.clone(), text);
        }
    }
    (env, Value::Object(fields))
}

/// The parameters an activation gets: the action's (and its package's, merged in by the
/// controller) under the invoke's payload; an array payload is passed as it is.
pub(crate) fn merge_parameters(action: &Action, payload: Value) -> Value {
    match payload {
        Value::Object(fields) => {
            let mut merged = action.parameter_object();
            merged.extend(fields);
            Value::Object(merged)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_answers_are_interpreted_as_the_invoker_does() {
        let ok = interpret(true, br#"{"a":1}"#, 7);
        assert_eq!((ok.status, ok.size), (Status::Success, Some(7)));
        assert_eq!(interpret(true, br#"{"error":"no"}"#, 14).status, Status::ApplicationError);
        assert_eq!(interpret(true, b"[1]", 3).status, Status::Success);
        assert_eq!(interpret(true, b"42", 2).status, Status::DeveloperError);
        let dev = proxy_error("command exited");
        assert_eq!((dev.status, dev.result.unwrap()), (Status::DeveloperError, json!({"error": "command exited"})));
        let big = interpret(true, &vec![b'x'; MAX_RESULT + 10], MAX_RESULT + 10);
        assert_eq!(big.status, Status::ApplicationError);
        assert!(big.result.unwrap()["error"]
            .as_str()
            .unwrap()
            .starts_with("The action produced a response that exceeded the allowed length: 1048586 > 1048576 bytes."));
        assert_eq!(
            timed_out(Duration::from_millis(100), false).result.unwrap()["error"],
            "The action exceeded its time limits of 100 milliseconds."
        );
    }

    #[test]
    fn logs_are_cut_at_the_limit() {
        let now = chrono::Utc::now();
        let lines = vec![(now, "stdout", "x".repeat(600 * 1024)), (now, "stdout", "y".repeat(600 * 1024))];
        let out = format_logs(lines, 1);
        assert_eq!(out.len(), 2);
        assert!(
            out[1].ends_with("Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes.")
        );
    }
}
