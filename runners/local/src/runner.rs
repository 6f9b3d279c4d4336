//! [`LocalRunner`]: the local backend behind the runner SPI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use faas_api::cloudevents::Event;
use faas_api::{
    Activation, ActivationQuery, ActivationStatus, App, AppSpec, BackendProfile, Capabilities, Capability, Context,
    DeployReport, Error, FunctionInfo, FunctionSpec, InvokeMode, InvokeRequest, Invoked, Package, Payload, Progress,
    Runner, Services,
};

use crate::activations::{ActivationLog, DEFAULT_CAPACITY};
use crate::inproc::InProcess;
use crate::pool::{FunctionPool, PoolOptions};
use crate::queue::{AsyncQueue, Job, JobRunner};

/// Default request/response size limit: 6 MiB, as Lambda's synchronous limit.
pub const DEFAULT_MAX_BODY: usize = 6 * 1024 * 1024;

/// How the local backend runs functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Handlers are called directly in this process.
    InProcess,
    /// The app binary runs as child processes with a warm pool per function.
    Process,
}

impl Mode {
    /// `in-process` or `process`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::InProcess => "in-process",
            Mode::Process => "process",
        }
    }
}

/// Settings of the local backend. The `[backends.NAME]` keys of a `kind = "local"` profile map
/// onto these (see [`LocalOptions::from_profile`]).
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Process or in-process.
    pub mode: Mode,
    /// Where the activation log, the async journal and packaged artifacts live. `None` uses a
    /// temporary directory removed when the runner is dropped.
    pub state_dir: Option<PathBuf>,
    /// Largest request or response body in bytes (default 6 MiB).
    pub max_body: usize,
    /// Idle instances are stopped after this long (process mode; default 5 minutes).
    pub idle_timeout: Duration,
    /// Enforce `memory_mb` as a data-segment limit on function processes (process mode).
    pub memory_limit: bool,
    /// How many more times a failed async invocation is tried (default 2, as Lambda).
    pub async_retries: u32,
    /// First async retry delay; doubles each time, with jitter (default 1 s).
    pub retry_base: Duration,
    /// Most invocations waiting for a free instance per function before calls are throttled.
    pub max_waiting: usize,
    /// Echo function log lines to this process's stderr, prefixed with the function name.
    pub echo_logs: bool,
    /// Where `Context::emit` sends events: the ingress URL of a CloudEvents gateway (`faas gateway`,
    /// e.g. `http://127.0.0.1:8090/`), which routes them to functions on any backend. Unset: events go
    /// to this runner's own functions whose triggers match (profile key `events`).
    pub events_url: Option<String>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            mode: Mode::Process,
            state_dir: None,
            max_body: DEFAULT_MAX_BODY,
            idle_timeout: Duration::from_secs(300),
            memory_limit: false,
            async_retries: 2,
            retry_base: Duration::from_secs(1),
            max_waiting: 1000,
            echo_logs: false,
            events_url: None,
        }
    }
}

impl LocalOptions {
    /// The settings a `kind = "local"` profile accepts.
    pub const PROFILE_KEYS: &'static [&'static str] = &[
        "mode",
        "state_dir",
        "max_body_mb",
        "idle_timeout",
        "memory_limit",
        "async_retries",
        "retry_base",
        "max_waiting",
        "endpoint",
        "port",
        "token",
        "events",
    ];

    /// Reads a `kind = "local"` profile: `mode` (`"process"` | `"in-process"`), `state_dir`,
    /// `max_body_mb`, `idle_timeout`, `memory_limit`, `async_retries`, `retry_base`,
    /// `max_waiting`, `events` (the gateway ingress URL for `Context::emit`), plus `endpoint`, `port`
    /// and `token`, which the CLI uses to reach
    /// `faas dev`.
    pub fn from_profile(profile: &BackendProfile) -> Result<LocalOptions, Error> {
        profile.deny_unknown(LocalOptions::PROFILE_KEYS)?;
        let mut o = LocalOptions::default();
        match profile.str("mode")?.as_deref() {
            None | Some("process") => o.mode = Mode::Process,
            Some("in-process") => o.mode = Mode::InProcess,
            Some(other) => {
                return Err(Error::bad_input(format!(
                    "{}: key `backends.{}.mode`: unknown mode `{other}`; use \"process\" or \"in-process\"",
                    profile.origin, profile.name
                )));
            }
        }
        o.state_dir = profile.str("state_dir")?.map(PathBuf::from);
        if let Some(mb) = profile.int("max_body_mb")? {
            o.max_body = usize::try_from(mb).unwrap_or(0).max(1) * 1024 * 1024;
        }
        if let Some(d) = profile.duration("idle_timeout")? {
            o.idle_timeout = d;
        }
        if let Some(b) = profile.bool("memory_limit")? {
            o.memory_limit = b;
        }
        if let Some(n) = profile.int("async_retries")? {
            o.async_retries = n.clamp(0, 100) as u32;
        }
        if let Some(d) = profile.duration("retry_base")? {
            o.retry_base = d;
        }
        if let Some(n) = profile.int("max_waiting")? {
            o.max_waiting = n.max(0) as usize;
        }
        if let Some(url) = profile.str("events")? {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::bad_input(format!(
                    "{}: key `backends.{}.events`: `{url}` is not an http(s) URL (the gateway's ingress, e.g. \
                     \"http://127.0.0.1:8090/\")",
                    profile.origin, profile.name
                )));
            }
            o.events_url = Some(url);
        }
        Ok(o)
    }
}

enum Executor {
    InProcess(Arc<InProcess>),
    Process(Arc<FunctionPool>),
}

struct Deployed {
    spec: FunctionSpec,
    digest: String,
    executor: Executor,
    /// In-process mode: the state service the function's variables name (`FAAS_STATE_URL`,
    /// `FAAS_STATE_TOKEN`, put there by `faas_api::state::bind`); a process finds it in its
    /// environment.
    state: Option<Arc<dyn faas_api::state::StateStore>>,
}

/// The local backend. Construct with [`LocalRunner::new`] (process mode, functions arrive by
/// deploying a package) or [`LocalRunner::in_process`] (the app is linked in).
///
/// ```
/// use faas_api::{App, Context, Error, InvokeRequest, Payload, Runner};
/// use faas_runner_local::{LocalOptions, LocalRunner};
/// async fn hello(_cx: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> {
///     Ok(serde_json::json!({"message": format!("Hello, {}!", v["name"].as_str().unwrap_or("?"))}))
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let runner = LocalRunner::in_process(App::new().function("hello", hello), LocalOptions::default()).unwrap();
/// let out = runner.invoke(InvokeRequest::new("hello", Payload::json(&serde_json::json!({"name": "Ada"})).unwrap())).await.unwrap();
/// assert_eq!(out.payload.body().as_ref(), br#"{"message":"Hello, Ada!"}"#);
/// # });
/// ```
pub struct LocalRunner {
    me: Weak<LocalRunner>,
    options: LocalOptions,
    app: Option<App>,
    state_dir: PathBuf,
    runtime_dir: tempfile::TempDir,
    _temp_state: Option<tempfile::TempDir>,
    functions: RwLock<BTreeMap<String, Arc<Deployed>>>,
    activations: ActivationLog,
    queue: AsyncQueue,
    services_url: Arc<RwLock<Option<String>>>,
    /// What in-process handlers reach through `Context::invoke` and `emit`; made once, shared by
    /// every invocation.
    inproc_services: std::sync::OnceLock<Arc<dyn Services>>,
}

impl LocalRunner {
    /// A process-mode runner (or in-process, if `options.mode` says so, with an empty app).
    pub fn new(options: LocalOptions) -> Result<Arc<LocalRunner>, Error> {
        Self::build(None, options)
    }

    /// An in-process runner hosting `app`, with every function of the app already deployed with
    /// default settings (deploy a package to change them).
    pub fn in_process(app: App, mut options: LocalOptions) -> Result<Arc<LocalRunner>, Error> {
        app.validate()?;
        options.mode = Mode::InProcess;
        let runner = Self::build(Some(app.clone()), options)?;
        let specs: Vec<FunctionSpec> = app.manifest().functions.iter().map(FunctionSpec::from_description).collect();
        runner.install(specs, Path::new(""), "in-process")?;
        Ok(runner)
    }

    /// A runner for a `kind = "local"` backend profile.
    pub fn from_profile(profile: &BackendProfile) -> Result<Arc<LocalRunner>, Error> {
        Self::new(LocalOptions::from_profile(profile)?)
    }

    fn build(app: Option<App>, options: LocalOptions) -> Result<Arc<LocalRunner>, Error> {
        let io = |what: &str, e: std::io::Error| Error::unavailable(format!("cannot {what}: {e}"));
        let (state_dir, temp_state) = match &options.state_dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| io(&format!("create state directory {}", d.display()), e))?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("faas-state-")
                    .tempdir()
                    .map_err(|e| io("create a state directory", e))?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        // Unix socket paths are limited to ~108 bytes, so sockets live in a short temp dir.
        let runtime_dir = tempfile::Builder::new()
            .prefix("faas-")
            .tempdir_in("/tmp")
            .map_err(|e| io("create a socket directory", e))?;
        let activations = ActivationLog::open(&state_dir.join("activations.jsonl"), DEFAULT_CAPACITY)
            .map_err(|e| io("open the activation log", e))?;
        let journal = state_dir.join("async-journal.jsonl");
        Ok(Arc::new_cyclic(|me: &Weak<LocalRunner>| {
            let job_runner: Weak<dyn JobRunner> = me.clone();
            let queue = AsyncQueue::open(&journal, job_runner, options.async_retries, options.retry_base);
            LocalRunner {
                me: me.clone(),
                options,
                app,
                state_dir,
                runtime_dir,
                _temp_state: temp_state,
                functions: RwLock::new(BTreeMap::new()),
                activations,
                queue,
                services_url: Arc::new(RwLock::new(None)),
                inproc_services: std::sync::OnceLock::new(),
            }
        }))
    }

    /// The mode this runner runs functions in.
    pub fn mode(&self) -> Mode {
        self.options.mode
    }

    /// The options it was built with.
    pub fn options(&self) -> &LocalOptions {
        &self.options
    }

    /// Where state (activation log, async journal, artifacts) is kept.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Tells function processes where the HTTP front is, so `Context::invoke` and
    /// `Context::emit` work inside them. Set by the front when it starts.
    pub fn set_services_url(&self, url: impl Into<String>) {
        *self.services_url.write().expect("services url lock") = Some(url.into());
    }

    /// Starts asynchronous invocations recovered from the journal (left pending by an earlier
    /// run). Call after the functions they target are deployed.
    pub fn resume_async(&self) -> usize {
        self.queue.resume()
    }

    /// Routes `event` to every deployed function whose event trigger matches it, as one
    /// asynchronous invocation each; returns `(function, activation id)` pairs.
    pub async fn emit_event(&self, event: &Event, traceparent: Option<String>) -> Result<Vec<(String, String)>, Error> {
        let specs: Vec<FunctionSpec> =
            self.functions.read().expect("functions lock").values().map(|d| d.spec.clone()).collect();
        let payload = faas_api::event::encode_structured(event)?;
        let mut out = vec![];
        for name in faas_api::app::functions_matching(&specs, event) {
            let req = InvokeRequest {
                function: name.clone(),
                payload: payload.clone(),
                mode: InvokeMode::Async,
                traceparent: traceparent.clone(),
                with_logs: false,
                cause: None,
            };
            let invoked = self.invoke(req).await?;
            out.push((name, invoked.activation_id));
        }
        Ok(out)
    }

    /// Stops every function process.
    pub async fn shutdown(&self) {
        let all: Vec<Arc<Deployed>> =
            std::mem::take(&mut *self.functions.write().expect("functions lock")).into_values().collect();
        for d in all {
            if let Executor::Process(pool) = &d.executor {
                pool.retire().await;
            }
        }
        self.activations.flush();
    }

    fn lookup(&self, name: &str) -> Result<Arc<Deployed>, Error> {
        let functions = self.functions.read().expect("functions lock");
        functions
            .get(name)
            .cloned()
            .ok_or_else(|| faas_api::app::not_found_error(name, functions.keys().map(String::as_str)))
    }

    fn install(&self, specs: Vec<FunctionSpec>, artifact: &Path, digest: &str) -> Result<DeployReport, Error> {
        self.check(&specs)?;
        if self.options.mode == Mode::InProcess {
            let app =
                self.app.as_ref().ok_or_else(|| Error::unavailable("this in-process runner has no app linked in"))?;
            for s in &specs {
                if !app.contains(&s.name) {
                    return Err(app.not_found(&s.name).with_type("UnknownFunction"));
                }
            }
        }
        let mut report = DeployReport { created: vec![], updated: vec![], unchanged: vec![] };
        let mut retired = vec![];
        {
            let mut functions = self.functions.write().expect("functions lock");
            for spec in specs {
                let previous = functions.get(&spec.name).cloned();
                if let Some(p) = &previous
                    && p.spec == spec
                    && p.digest == digest
                {
                    report.unchanged.push(spec.name.clone());
                    continue;
                }
                let executor = match self.options.mode {
                    Mode::InProcess => {
                        let handler = self.app.as_ref().and_then(|a| a.handler_of(&spec.name)).expect("checked above");
                        Executor::InProcess(Arc::new(InProcess::new(handler, &spec, self.options.max_waiting)))
                    }
                    Mode::Process => Executor::Process(FunctionPool::start(
                        spec.clone(),
                        artifact.to_path_buf(),
                        PoolOptions {
                            socket_dir: self.runtime_dir.path().to_path_buf(),
                            idle_timeout: self.options.idle_timeout,
                            memory_limit: self.options.memory_limit,
                            max_body: self.options.max_body,
                            max_waiting: self.options.max_waiting,
                            echo_logs: self.options.echo_logs,
                            services_url: self.services_url.clone(),
                            events_url: self.options.events_url.clone(),
                        },
                    )),
                };
                let name = spec.name.clone();
                let state = faas_host::state::HttpState::store_from_env(&|k| spec.env.get(k).cloned());
                functions
                    .insert(name.clone(), Arc::new(Deployed { spec, digest: digest.to_string(), executor, state }));
                match previous {
                    Some(p) => {
                        report.updated.push(name);
                        retired.push(p);
                    }
                    None => report.created.push(name),
                }
            }
        }
        for p in retired {
            if let Executor::Process(pool) = &p.executor {
                let pool = pool.clone();
                tokio::spawn(async move { pool.retire().await });
            }
        }
        Ok(report)
    }

    /// Runs one invocation to completion and records it; returns a copy of its log lines only when
    /// `want_logs` (the record keeps them either way).
    #[allow(clippy::too_many_arguments)] // one private call site per invocation kind
    async fn execute(
        &self,
        deployed: &Deployed,
        id: String,
        payload: Payload,
        traceparent: Option<String>,
        cause: Option<String>,
        mode: InvokeMode,
        attempt: u32,
        want_logs: bool,
    ) -> (Result<Payload, Error>, Option<Vec<String>>) {
        let start = SystemTime::now();
        let started = Instant::now();
        let deadline = start + deployed.spec.timeout;
        let trace = traceparent.as_deref().and_then(faas_api::TraceContext::parse).map(|t| t.child());
        let outcome = match &deployed.executor {
            Executor::InProcess(exec) => {
                let services = self
                    .inproc_services
                    .get_or_init(|| {
                        Arc::new(InProcessServices {
                            runner: self.me.clone(),
                            events: self.options.events_url.clone().map(crate::child::HttpServices::events_only),
                        })
                    })
                    .clone();
                let mut cx = Context::builder(&deployed.spec.name)
                    .invocation_id(&id)
                    .deadline(deadline)
                    .backend("local")
                    .services(services)
                    .vars(deployed.spec.env.clone());
                if let Some(t) = trace {
                    cx = cx.trace(t);
                }
                if let Some(state) = &deployed.state {
                    cx = cx.state(state.clone());
                }
                exec.run(cx, payload, &deployed.spec).await
            }
            Executor::Process(pool) => {
                let tp = trace.unwrap_or_else(faas_api::TraceContext::random).traceparent();
                pool.invoke(&id, deadline, &tp, payload).await
            }
        };
        let mut result = outcome.result;
        if let Ok(p) = &result
            && p.len() > self.options.max_body
        {
            result = Err(Error::payload_too_large(format!(
                "the response of `{}` is {} bytes; the limit is {} bytes",
                deployed.spec.name,
                p.len(),
                self.options.max_body
            )));
        }
        let duration_us = started.elapsed().as_micros() as u64;
        let activation = Activation {
            id,
            function: deployed.spec.name.clone(),
            start_ms: start.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64,
            duration_us,
            // Nothing is billed locally: the duration, so that billed figures add up the same way.
            billed_us: duration_us,
            cause,
            cold: outcome.cold,
            status: if result.is_ok() { ActivationStatus::Success } else { ActivationStatus::Error },
            error: result.as_ref().err().cloned(),
            result_size: result.as_ref().map(|p| p.len()).unwrap_or(0),
            mode,
            attempt,
            logs: outcome.logs,
        };
        let logs = want_logs.then(|| activation.logs.clone());
        self.activations.record(activation);
        (result, logs)
    }

    /// Copies an app binary into the state directory under its digest (once), so rebuilding the
    /// project never disturbs running instances; returns the copy and the digest.
    fn stage(&self, binary: &Path) -> Result<(PathBuf, String), Error> {
        if !binary.is_file() {
            return Err(Error::bad_input(format!("the artifact {} does not exist", binary.display())));
        }
        let digest = digest_file(binary)?;
        let dir = self.state_dir.join("artifacts").join(&digest);
        let file_name = binary.file_name().ok_or_else(|| Error::bad_input("the app binary path has no file name"))?;
        let artifact = dir.join(file_name);
        if !artifact.exists() {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::unavailable(format!("cannot create {}: {e}", dir.display())))?;
            let tmp = dir.join(".partial");
            std::fs::copy(binary, &tmp)
                .and_then(|_| std::fs::rename(&tmp, &artifact))
                .map_err(|e| Error::unavailable(format!("cannot copy {}: {e}", binary.display())))?;
        }
        Ok((artifact, digest))
    }

    fn check_size(&self, req: &InvokeRequest) -> Result<(), Error> {
        if req.payload.len() > self.options.max_body {
            return Err(Error::payload_too_large(format!(
                "the request body is {} bytes; the limit is {} bytes",
                req.payload.len(),
                self.options.max_body
            )));
        }
        Ok(())
    }
}

/// Digest of an artifact's bytes (FNV-1a 64, hex): identifies a build for idempotent deploys.
fn digest_file(path: &Path) -> Result<String, Error> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::bad_input(format!("cannot read artifact {}: {e}", path.display())))?;
    let mut h: u64 = 0xcbf29ce484222325;
    for b in &bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    Ok(format!("{h:016x}-{}", bytes.len()))
}

#[async_trait]
impl Runner for LocalRunner {
    fn kind(&self) -> &str {
        "local"
    }

    fn capabilities(&self) -> Capabilities {
        let mut claims: std::collections::BTreeSet<Capability> = [
            Capability::WarmReuse,
            Capability::Async,
            Capability::AsyncRetry,
            Capability::CloudEvents,
            Capability::Logs,
            Capability::HttpRoutes,
            Capability::Emit,
            Capability::Invoke,
        ]
        .into();
        if self.options.mode == Mode::Process {
            claims.insert(Capability::ProcessIsolation);
            if self.options.memory_limit {
                claims.insert(Capability::MemoryLimit);
            }
        }
        Capabilities {
            claims,
            max_sync_payload: self.options.max_body,
            max_async_payload: self.options.max_body,
            max_timeout: Duration::from_secs(15 * 60),
        }
    }

    async fn package(&self, app: &AppSpec, progress: &dyn Progress) -> Result<Package, Error> {
        self.check(&app.functions)?;
        if self.options.mode == Mode::InProcess {
            return Ok(Package {
                app: app.app.clone(),
                artifact: app.binary.clone(),
                size: 0,
                functions: app.functions.clone(),
            });
        }
        progress.step("copying the app binary");
        let (artifact, _) = self.stage(&app.binary)?;
        let size = std::fs::metadata(&artifact).map(|m| m.len()).unwrap_or(0);
        Ok(Package { app: app.app.clone(), artifact, size, functions: app.functions.clone() })
    }

    async fn deploy(&self, package: &Package, progress: &dyn Progress) -> Result<DeployReport, Error> {
        progress.step("deploying functions");
        let (artifact, digest) = match self.options.mode {
            Mode::InProcess => (package.artifact.clone(), "in-process".to_string()),
            Mode::Process => self.stage(&package.artifact)?,
        };
        let report = self.install(package.functions.clone(), &artifact, &digest)?;
        for name in report.created.iter().chain(&report.updated) {
            if let Ok(d) = self.lookup(name)
                && let Executor::Process(pool) = &d.executor
            {
                progress.step(&format!("pre-warming `{name}`"));
                pool.prewarm().await;
            }
        }
        Ok(report)
    }

    async fn invoke(&self, req: InvokeRequest) -> Result<Invoked, Error> {
        faas_api::validate_function_name(&req.function)?;
        let deployed = self.lookup(&req.function)?;
        self.check_size(&req)?;
        let id = uuid::Uuid::new_v4().to_string();
        match req.mode {
            InvokeMode::DryRun => Ok(Invoked { activation_id: id, payload: Payload::empty(), logs: None }),
            InvokeMode::Async => {
                let job = Job {
                    id: id.clone(),
                    function: req.function.clone(),
                    body: req.payload.body().to_vec(),
                    content_type: req.payload.content_type().map(str::to_string),
                    traceparent: req.traceparent.clone(),
                    cause: req.cause.clone(),
                    attempt: 1,
                };
                // Recorded before the job is queued, so the job's own (later) record replaces it.
                let mut pending = Activation {
                    id: id.clone(),
                    function: req.function.clone(),
                    start_ms: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64,
                    duration_us: 0,
                    billed_us: 0,
                    cause: req.cause.clone(),
                    cold: false,
                    status: ActivationStatus::Pending,
                    error: None,
                    result_size: 0,
                    mode: InvokeMode::Async,
                    attempt: 1,
                    logs: vec![],
                };
                self.activations.record(pending.clone());
                if let Err(e) = self.queue.enqueue(job) {
                    let err = Error::unavailable(format!("cannot queue the invocation durably: {e}"));
                    pending.status = ActivationStatus::Error;
                    pending.error = Some(err.clone());
                    self.activations.record(pending);
                    return Err(err);
                }
                Ok(Invoked { activation_id: id, payload: Payload::empty(), logs: None })
            }
            InvokeMode::Sync => {
                let (result, logs) = self
                    .execute(
                        &deployed,
                        id.clone(),
                        req.payload,
                        req.traceparent,
                        req.cause,
                        InvokeMode::Sync,
                        1,
                        req.with_logs,
                    )
                    .await;
                Ok(Invoked { activation_id: id, payload: result?, logs })
            }
        }
    }

    async fn list(&self) -> Result<Vec<FunctionInfo>, Error> {
        let functions = self.functions.read().expect("functions lock");
        Ok(functions.values().map(|d| FunctionInfo { spec: d.spec.clone(), state: "Active".into() }).collect())
    }

    async fn remove(&self, function: &str) -> Result<(), Error> {
        let removed = {
            let mut functions = self.functions.write().expect("functions lock");
            let known: Vec<String> = functions.keys().cloned().collect();
            functions
                .remove(function)
                .ok_or_else(|| faas_api::app::not_found_error(function, known.iter().map(String::as_str)))?
        };
        if let Executor::Process(pool) = &removed.executor {
            pool.retire().await;
        }
        Ok(())
    }

    async fn activations(&self, query: ActivationQuery) -> Result<Vec<Activation>, Error> {
        Ok(self.activations.query(&query))
    }
}

impl JobRunner for LocalRunner {
    fn run(&self, job: Job) -> futures::future::BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let deployed = self.lookup(&job.function)?;
            let payload = Payload::new(job.body, job.content_type);
            let (result, _) = self
                .execute(&deployed, job.id, payload, job.traceparent, job.cause, InvokeMode::Async, job.attempt, false)
                .await;
            result.map(|_| ())
        })
    }
}

struct InProcessServices {
    runner: Weak<LocalRunner>,
    /// Set when events go to a gateway rather than to this runner's functions.
    events: Option<crate::child::HttpServices>,
}

#[async_trait]
impl Services for InProcessServices {
    async fn invoke(&self, caller: &Context, name: &str, payload: Payload) -> Result<Payload, Error> {
        let runner = self.runner.upgrade().ok_or_else(|| Error::unavailable("the local backend has stopped"))?;
        let req = InvokeRequest {
            function: name.to_string(),
            payload,
            mode: InvokeMode::Sync,
            traceparent: Some(caller.trace().traceparent()),
            with_logs: false,
            cause: Some(caller.invocation_id().to_string()),
        };
        Ok(runner.invoke(req).await?.payload)
    }

    async fn emit(&self, caller: &Context, event: Event) -> Result<(), Error> {
        if let Some(gateway) = &self.events {
            return gateway.emit(caller, event).await;
        }
        let runner = self.runner.upgrade().ok_or_else(|| Error::unavailable("the local backend has stopped"))?;
        runner.emit_event(&event, Some(caller.trace().traceparent())).await.map(|_| ())
    }
}
