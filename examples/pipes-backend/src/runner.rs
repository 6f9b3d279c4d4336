//! The control side: [`PipesRunner`], the `faas_api::Runner` of the pipes backend.
//!
//! Each deployed function has a [`Pool`] of warm instances, each a child process of the function
//! binary started with a cleared environment (the function's variables, [`ENV_PIPES`] and the
//! basics of `faas_supervisor::BASE_ENV`), in its own process group. An invocation takes a warm
//! instance or starts one, writes the request line, and collects the lines the instance writes
//! until the end marker (see [`crate::protocol`]); the answer is among them, the rest is the log.
//! An instance that has not answered by the function's deadline is killed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use faas_api::{
    Activation, ActivationQuery, ActivationStatus, AppSpec, Capabilities, Capability, DeployReport, Error,
    FunctionInfo, InvokeMode, InvokeRequest, Invoked, Package, Payload, Progress, Runner,
};
use faas_host::wire;
use faas_supervisor::{
    GateError, Input, Instance, LineCapture, Output, Pool, PoolConfig, Process, ProcessSpec, WhenBusy,
};
use tokio::io::AsyncWriteExt as _;

use crate::protocol::{Answer, Body, Request, END, ENV_PIPES, MAX_LINE, MAX_PAYLOAD, VERSION};
use crate::store::{FunctionRecord, Store};
use crate::KIND;

/// Idle instances are stopped after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Most invocations of one function waiting for a free instance.
const MAX_WAITING: usize = 1024;
/// How long the lines of an instance that ended are read for.
const DRAIN: Duration = Duration::from_millis(200);

/// One instance of a function: its process, reading requests on stdin.
struct Child {
    process: Process,
}

impl Instance for Child {
    fn usable(&self) -> bool {
        self.process.is_running()
    }
}

impl Child {
    async fn drain(&mut self) -> Vec<String> {
        self.process.lines().expect("started with Output::Lines").until_closed(DRAIN).await
    }
}

/// The pool of a function, for the record it was started from.
struct Live {
    record: FunctionRecord,
    pool: Arc<Pool<Child>>,
}

/// What one invocation produced.
struct Outcome {
    result: Result<Payload, Error>,
    logs: Vec<String>,
    cold: bool,
}

/// The pipes backend's runner: functions deployed into a state directory, run as supervised
/// child processes of this process.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use faas_api::{Capability, ErrorKind, InvokeRequest, Payload, Runner};
/// let dir = tempfile::tempdir().unwrap();
/// let runner = faas_pipes::PipesRunner::open(dir.path().to_path_buf()).unwrap();
/// assert_eq!(runner.kind(), "pipes");
/// assert!(runner.capabilities().claims(Capability::WarmReuse));
/// assert!(!runner.capabilities().claims(Capability::Async));
/// let err = runner.invoke(InvokeRequest::new("hello", Payload::empty())).await.unwrap_err();
/// assert_eq!((err.kind(), err.message()), (ErrorKind::NotFound, "no function named `hello` is deployed to the pipes backend"));
/// # }
/// ```
pub struct PipesRunner {
    store: Store,
    live: Mutex<BTreeMap<String, Live>>,
}

impl std::fmt::Debug for PipesRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipesRunner").field("dir", &self.store.dir()).finish_non_exhaustive()
    }
}

impl PipesRunner {
    /// A runner keeping its state in `dir` (created if need be).
    pub fn open(dir: PathBuf) -> Result<PipesRunner, Error> {
        Ok(PipesRunner { store: Store::open(&dir)?, live: Mutex::new(BTreeMap::new()) })
    }

    /// The deployed record of `function` and its pool. A pool started from an older record (the
    /// function was redeployed, here or by another `faas` command) is closed and replaced.
    fn pool(&self, function: &str) -> Result<(FunctionRecord, Arc<Pool<Child>>), Error> {
        let Some(record) = self.store.function(function)? else {
            return Err(Error::not_found(format!("no function named `{function}` is deployed to the pipes backend")));
        };
        let mut live = self.live.lock().expect("live lock");
        if let Some(l) = live.get(function).filter(|l| l.record == record) {
            return Ok((record, l.pool.clone()));
        }
        let concurrency = record.spec.concurrency.max(1) as usize;
        let config = PoolConfig::new(concurrency, WhenBusy::Queue { max_waiting: MAX_WAITING });
        let pool = Pool::new(config.idle_timeout(Some(IDLE_TIMEOUT)));
        if let Some(old) = live.insert(function.to_string(), Live { record: record.clone(), pool: pool.clone() }) {
            old.pool.close();
        }
        Ok((record, pool))
    }

    /// Starts an instance of `record`'s function.
    async fn spawn(&self, record: &FunctionRecord) -> Result<Child, Error> {
        let capture = LineCapture { marker: Some(END.to_string()), echo: None, max_line: MAX_LINE, max_lines: 10_000 };
        let spec = ProcessSpec::new(&record.binary)
            .inherit_base()
            .envs(&record.spec.env)
            .env(ENV_PIPES, VERSION)
            .env(wire::ENV_FUNCTION, &record.spec.name)
            .input(Input::Pipe)
            .output(Output::Lines(capture));
        let spawned = match spec.clone().spawn() {
            // ETXTBSY: another thread forked while the binary was being copied; that clears up.
            Err(e) if e.io().raw_os_error() == Some(26) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                spec.spawn()
            }
            other => other,
        };
        let process = spawned.map_err(|e| {
            Error::crash(format!("cannot start the binary of `{}`: {e}", record.spec.name)).with_type("StartFailed")
        })?;
        tracing::debug!(function = %record.spec.name, pid = process.id(), "started an instance");
        Ok(Child { process })
    }

    /// Runs one invocation on an instance of `pool` (waiting at most the function's timeout for
    /// one), killing the instance when it has not answered by the deadline.
    async fn run(&self, record: &FunctionRecord, pool: &Pool<Child>, id: &str, request: &InvokeRequest) -> Outcome {
        let name = &record.spec.name;
        let timeout = record.spec.timeout;
        let fail = |result| Outcome { result: Err(result), logs: vec![], cold: false };
        let mut lease = match pool.lease(timeout).await {
            Ok(lease) => lease,
            Err(GateError::Closed) => return fail(Error::unavailable(format!("`{name}` was redeployed or removed"))),
            Err(e) => return fail(Error::throttled(format!("every instance of `{name}` is busy: {e}"))),
        };
        let (mut child, cold) = match lease.take_warm() {
            Some(child) => (child, false),
            None => match self.spawn(record).await {
                Ok(child) => (child, true),
                Err(e) => return fail(e),
            },
        };
        let deadline = Instant::now() + timeout;
        let line = Request {
            id: id.to_string(),
            function: name.clone(),
            deadline_ms: epoch_ms(SystemTime::now() + timeout),
            traceparent: request.traceparent.clone(),
            body: Body::from(&request.payload),
        };
        let mut line = serde_json::to_vec(&line).expect("a request serialises");
        line.push(b'\n');
        let stdin = child.process.stdin().expect("started with Input::Pipe");
        let write = async { stdin.write_all(&line).await.and(stdin.flush().await) };
        let mut logs = match tokio::time::timeout_at(deadline.into(), write).await {
            Ok(Ok(())) => {
                let lines = child.process.lines().expect("started with Output::Lines");
                lines.until_marker(id, deadline.saturating_duration_since(Instant::now())).await
            }
            Ok(Err(_)) | Err(_) => vec![],
        };
        let prefix = Answer::prefix(id);
        if let Some(at) = logs.iter().rposition(|l| l.starts_with(&prefix)) {
            let result = match serde_json::from_str::<Answer>(&logs.remove(at)) {
                Ok(answer) => {
                    lease.give_back(child);
                    answer.into_result()
                }
                Err(e) => {
                    child.process.kill(); // out of step with the protocol: not reused
                    Err(Error::crash(format!("`{name}` answered with a line that is not an answer: {e}")))
                }
            };
            return Outcome { result, logs, cold };
        }
        // No answer: the deadline passed, or the output closed because the process is ending.
        // Either way it gets until the deadline to end on its own.
        let ended = child.process.wait_timeout(deadline.saturating_duration_since(Instant::now())).await;
        if ended.is_none() {
            child.process.kill_and_wait().await;
        }
        logs.extend(child.drain().await);
        let error = match ended {
            Some(exit) => {
                let last = faas_supervisor::last_lines(&logs, 5).join("\n");
                Error::crash(format!("function `{name}` ended without answering: {exit}; last lines:\n{last}"))
            }
            None => {
                let hint = if cold {
                    " (a new instance that never answered: is the binary served with faas::serve_with(app, \
                     &[&faas_pipes::PipesHost])?)"
                } else {
                    ""
                };
                Error::timeout(format!(
                    "function `{name}` timed out after {} ms; its process was killed{hint}",
                    timeout.as_millis()
                ))
            }
        };
        Outcome { result: Err(error), logs, cold }
    }
}

#[async_trait]
impl Runner for PipesRunner {
    fn kind(&self) -> &str {
        KIND
    }

    /// Warm reuse (the pools), process isolation (one process per instance), CloudEvents (event
    /// handlers take structured events as any payload) and logs (the activation log). Not async
    /// invocation: a queue with retries would die with the `faas` command that started it.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            claims: [Capability::WarmReuse, Capability::ProcessIsolation, Capability::CloudEvents, Capability::Logs]
                .into(),
            max_sync_payload: MAX_PAYLOAD,
            max_async_payload: 0,
            max_timeout: Duration::from_secs(15 * 60),
        }
    }

    async fn package(&self, app: &AppSpec, progress: &dyn Progress) -> Result<Package, Error> {
        self.check(&app.functions)?;
        progress.step(&format!("copying {} into {}", app.binary.display(), self.store.dir().display()));
        let (artifact, size) = self.store.install_binary(&app.app, &app.binary)?;
        Ok(Package { app: app.app.clone(), artifact, size, functions: app.functions.clone() })
    }

    async fn deploy(&self, package: &Package, progress: &dyn Progress) -> Result<DeployReport, Error> {
        self.check(&package.functions)?;
        if !package.artifact.is_file() {
            return Err(Error::bad_input(format!("the package {} does not exist", package.artifact.display())));
        }
        let mut report = DeployReport { created: vec![], updated: vec![], unchanged: vec![] };
        for spec in &package.functions {
            let record = FunctionRecord { spec: spec.clone(), binary: package.artifact.clone() };
            let name = spec.name.clone();
            match self.store.function(&name)? {
                Some(old) if old == record => report.unchanged.push(name),
                old => {
                    progress.step(&format!("deploying `{name}`"));
                    self.store.save(&record)?;
                    if old.is_some() {
                        report.updated.push(name)
                    } else {
                        report.created.push(name)
                    }
                }
            }
        }
        self.store.prune_binaries()?;
        Ok(report)
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<Invoked, Error> {
        if request.mode == InvokeMode::Async {
            return Err(Error::bad_input("the pipes backend does not offer `async` invocation")
                .with_type("UnsupportedCapability"));
        }
        let (record, pool) = self.pool(&request.function)?;
        if request.payload.len() > MAX_PAYLOAD {
            return Err(Error::payload_too_large(format!(
                "the request to `{}` is {} bytes; the pipes backend's limit is {MAX_PAYLOAD} bytes",
                request.function,
                request.payload.len()
            )));
        }
        if request.mode == InvokeMode::DryRun {
            return Ok(Invoked::default());
        }
        let id = uuid::Uuid::new_v4().to_string();
        let (started_at, started) = (SystemTime::now(), Instant::now());
        let outcome = self.run(&record, &pool, &id, &request).await;
        let duration_us = started.elapsed().as_micros() as u64;
        let activation = Activation {
            id: id.clone(),
            function: request.function.clone(),
            start_ms: epoch_ms(started_at),
            duration_us,
            billed_us: duration_us, // nothing is billed here: the duration
            cause: request.cause.clone(),
            cold: outcome.cold,
            status: if outcome.result.is_ok() { ActivationStatus::Success } else { ActivationStatus::Error },
            error: outcome.result.as_ref().err().cloned(),
            result_size: outcome.result.as_ref().map_or(0, Payload::len),
            mode: InvokeMode::Sync,
            attempt: 1,
            logs: outcome.logs,
        };
        self.store.record_activation(&activation)?;
        let payload = outcome.result?;
        Ok(Invoked { activation_id: id, payload, logs: request.with_logs.then_some(activation.logs) })
    }

    async fn list(&self) -> Result<Vec<FunctionInfo>, Error> {
        let records = self.store.functions()?;
        Ok(records.into_iter().map(|r| FunctionInfo { spec: r.spec, state: "Active".to_string() }).collect())
    }

    async fn remove(&self, function: &str) -> Result<(), Error> {
        if !self.store.remove(function)? {
            return Err(Error::not_found(format!("no function named `{function}` is deployed to the pipes backend")));
        }
        if let Some(old) = self.live.lock().expect("live lock").remove(function) {
            old.pool.close();
        }
        Ok(())
    }

    async fn activations(&self, query: ActivationQuery) -> Result<Vec<Activation>, Error> {
        Ok(self.store.activations(&query)?)
    }
}

/// Milliseconds since the Unix epoch of `t` (0 before it).
fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}
