//! The runner SPI: what every backend implements so the CLI, the conformance suite and the
//! gateway can package, deploy, invoke, list, remove and read logs the same way everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::app::{HandlerKind, Manifest, Trigger};
use crate::config::{BackendProfile, Config};
use crate::{Error, Payload};

/// A feature a backend may or may not offer. Conformance cases tagged `uses:<capability>` run
/// only where the runner claims it; functions that declare a capability are refused by runners
/// that do not claim it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// A warm instance is reused across invocations (process-global state survives).
    WarmReuse,
    /// Asynchronous (fire-and-forget) invocation with retries.
    Async,
    /// CloudEvent handlers and event triggers.
    #[serde(rename = "cloudevents")]
    CloudEvents,
    /// Per-invocation logs can be fetched afterwards.
    Logs,
    /// Declared HTTP routes are served.
    HttpRoutes,
    /// Each function instance runs in its own process.
    ProcessIsolation,
    /// A per-function memory limit is enforced.
    MemoryLimit,
    /// Responses can be streamed to the caller as they are produced.
    ResponseStreaming,
    /// Events a function emits (`Context::emit`) reach the functions subscribed to them.
    Emit,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 9] = [
        Capability::WarmReuse,
        Capability::Async,
        Capability::CloudEvents,
        Capability::Logs,
        Capability::HttpRoutes,
        Capability::ProcessIsolation,
        Capability::MemoryLimit,
        Capability::ResponseStreaming,
        Capability::Emit,
    ];

    /// The kebab-case name used in tags (`uses:<name>`) and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::WarmReuse => "warm-reuse",
            Capability::Async => "async",
            Capability::CloudEvents => "cloudevents",
            Capability::Logs => "logs",
            Capability::HttpRoutes => "http-routes",
            Capability::ProcessIsolation => "process-isolation",
            Capability::MemoryLimit => "memory-limit",
            Capability::ResponseStreaming => "response-streaming",
            Capability::Emit => "emit",
        }
    }

    /// Parses a kebab-case name.
    pub fn parse(s: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a runner offers, with its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Claimed capabilities.
    pub claims: BTreeSet<Capability>,
    /// Largest synchronous request or response body, in bytes.
    pub max_sync_payload: usize,
    /// Largest asynchronous request body, in bytes.
    pub max_async_payload: usize,
    /// Longest function timeout accepted.
    #[serde(with = "crate::config::duration_ms")]
    pub max_timeout: Duration,
}

impl Capabilities {
    /// Whether `c` is claimed.
    pub fn claims(&self, c: Capability) -> bool {
        self.claims.contains(&c)
    }

    /// Refuses any function that needs an unclaimed capability or a timeout over the limit,
    /// naming the function and the capability. Runners call this before deploying anything.
    ///
    /// ```
    /// use faas_api::{Capabilities, Capability, FunctionSpec};
    /// let caps = Capabilities { claims: [Capability::Async].into(), max_sync_payload: 1, max_async_payload: 1,
    ///     max_timeout: std::time::Duration::from_secs(60) };
    /// let mut f = FunctionSpec::new("f");
    /// f.requires.push(Capability::ResponseStreaming);
    /// let err = caps.check(&[f], "local").unwrap_err();
    /// assert!(err.message().contains("`response-streaming`"));
    /// ```
    pub fn check(&self, functions: &[FunctionSpec], backend: &str) -> Result<(), Error> {
        for f in functions {
            for c in &f.requires {
                if !self.claims(*c) {
                    return Err(Error::bad_input(format!(
                        "function `{}` needs capability `{c}`, which the `{backend}` backend does not offer",
                        f.name
                    ))
                    .with_type("UnsupportedCapability"));
                }
            }
            if f.timeout > self.max_timeout {
                return Err(Error::bad_input(format!(
                    "function `{}` has timeout {:?}, over the `{backend}` backend's limit of {:?}",
                    f.name, f.timeout, self.max_timeout
                )));
            }
        }
        Ok(())
    }
}

/// A function as deployed: its manifest entry merged with its `faas.toml` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionSpec {
    /// Logical name.
    pub name: String,
    /// Input style.
    pub handler: HandlerKind,
    /// Timeout per invocation.
    #[serde(with = "crate::config::duration_ms")]
    pub timeout: Duration,
    /// Memory in MB (a limit where the backend enforces one).
    pub memory_mb: u32,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Most invocations running at once (instances), when the backend limits it.
    pub concurrency: u32,
    /// Warm instances to start ahead of the first call.
    #[serde(default)]
    pub prewarm: u32,
    /// Declared triggers.
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// Capabilities needed.
    #[serde(default)]
    pub requires: Vec<Capability>,
}

impl FunctionSpec {
    /// A spec with the defaults: typed handler, 30 s timeout, 128 MB, concurrency 8.
    pub fn new(name: impl Into<String>) -> FunctionSpec {
        FunctionSpec {
            name: name.into(),
            handler: HandlerKind::Typed,
            timeout: crate::config::DEFAULT_TIMEOUT,
            memory_mb: crate::config::DEFAULT_MEMORY_MB,
            env: BTreeMap::new(),
            concurrency: crate::config::DEFAULT_CONCURRENCY,
            prewarm: 0,
            triggers: vec![],
            requires: vec![],
        }
    }

    /// A spec with the defaults for a function as its app binary describes it (handler style,
    /// triggers, required capabilities).
    ///
    /// ```
    /// use faas_api::{App, Context, Error, FunctionSpec};
    /// async fn f(_cx: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> { Ok(v) }
    /// let app = App::new().function("f", f).route("f", "GET", "/f");
    /// let spec = FunctionSpec::from_description(&app.manifest().functions[0]);
    /// assert_eq!(spec.triggers.len(), 1);
    /// ```
    pub fn from_description(d: &crate::FunctionDescription) -> FunctionSpec {
        let mut spec = FunctionSpec::new(&d.name);
        spec.handler = d.handler;
        spec.triggers = d.triggers.clone();
        spec.requires = d.requires.clone();
        spec
    }
}

/// An app ready to package: a built binary, its manifest, and the merged function specs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSpec {
    /// App name.
    pub app: String,
    /// The built function binary.
    pub binary: PathBuf,
    /// What the binary says about itself.
    pub manifest: Manifest,
    /// Functions to deploy.
    pub functions: Vec<FunctionSpec>,
}

impl AppSpec {
    /// Merges a manifest with the `[functions.*]` settings of a config: every function of the
    /// manifest is deployed; settings for a function the binary does not define are an error.
    pub fn from_parts(config: &Config, binary: PathBuf, manifest: Manifest) -> Result<AppSpec, Error> {
        for name in config.functions.keys() {
            if manifest.function(name).is_none() {
                let known: Vec<&str> = manifest.functions.iter().map(|f| f.name.as_str()).collect();
                return Err(Error::bad_input(format!(
                    "faas.toml configures function `{name}`, but the app binary does not define it (it defines: {})",
                    known.join(", ")
                )));
            }
        }
        let functions = manifest
            .functions
            .iter()
            .map(|d| {
                let mut spec = FunctionSpec::from_description(d);
                if let Some(c) = config.functions.get(&d.name) {
                    c.apply(&mut spec);
                }
                spec
            })
            .collect();
        Ok(AppSpec { app: config.app.name.clone(), binary, manifest, functions })
    }
}

/// The runner-specific artifact made from an [`AppSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// App name.
    pub app: String,
    /// The artifact: a binary, a zip, a directory.
    pub artifact: PathBuf,
    /// Size of the artifact in bytes.
    pub size: u64,
    /// Functions it serves.
    pub functions: Vec<FunctionSpec>,
}

/// How to invoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvokeMode {
    /// Wait for the result.
    #[default]
    Sync,
    /// Queue it and return an activation id.
    Async,
    /// Validate the request and permissions only.
    DryRun,
}

/// An invocation request through a runner.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    /// Function name.
    pub function: String,
    /// Input.
    pub payload: Payload,
    /// Mode.
    pub mode: InvokeMode,
    /// W3C `traceparent` to propagate.
    pub traceparent: Option<String>,
    /// Also return the invocation's log lines.
    pub with_logs: bool,
}

impl InvokeRequest {
    /// A synchronous request.
    pub fn new(function: impl Into<String>, payload: Payload) -> InvokeRequest {
        InvokeRequest { function: function.into(), payload, ..Default::default() }
    }
}

/// What a successful (or accepted) invocation returns.
#[derive(Debug, Clone, Default)]
pub struct Invoked {
    /// The activation (invocation) id.
    pub activation_id: String,
    /// The reply; empty for async and dry-run.
    pub payload: Payload,
    /// Log lines, when asked for and available.
    pub logs: Option<Vec<String>>,
}

/// The outcome of one activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationStatus {
    /// Queued or running.
    Pending,
    /// Completed without error.
    Success,
    /// Ended with an error (see `error`).
    Error,
}

/// One recorded invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    /// Activation id.
    pub id: String,
    /// Function name.
    pub function: String,
    /// Start time, Unix epoch milliseconds.
    pub start_ms: u64,
    /// Duration in microseconds.
    pub duration_us: u64,
    /// Whether a new instance had to be started.
    pub cold: bool,
    /// Outcome.
    pub status: ActivationStatus,
    /// The error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Error>,
    /// Size of the result in bytes.
    pub result_size: usize,
    /// Invoke mode.
    pub mode: InvokeMode,
    /// Attempt number (async retries start at 1).
    pub attempt: u32,
    /// Log lines the invocation wrote.
    #[serde(default)]
    pub logs: Vec<String>,
}

/// Which activations to return.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ActivationQuery {
    /// Only this function.
    pub function: Option<String>,
    /// Only this activation.
    pub id: Option<String>,
    /// At most this many, newest first (default 50).
    pub limit: Option<usize>,
}

/// A deployed function, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionInfo {
    /// The deployed function's spec.
    #[serde(flatten)]
    pub spec: FunctionSpec,
    /// Backend-specific state (`Active`, `Pending`, ...).
    pub state: String,
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployReport {
    /// Functions created.
    pub created: Vec<String>,
    /// Functions updated.
    pub updated: Vec<String>,
    /// Functions already identical.
    pub unchanged: Vec<String>,
}

/// Progress reporting for long operations; the CLI shows it with indicatif.
pub trait Progress: Send + Sync {
    /// A step has started.
    fn step(&self, message: &str);
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn step(&self, _: &str) {}
}

/// A backend. Implemented once per platform; selected by name through a [`Registry`].
#[async_trait]
pub trait Runner: Send + Sync {
    /// The backend kind (`local`, `lambda`, ...), as reported in contexts and the matrix.
    fn kind(&self) -> &str;

    /// What this runner offers.
    fn capabilities(&self) -> Capabilities;

    /// Refuses an app this runner cannot host, before anything is deployed.
    fn check(&self, spec: &[FunctionSpec]) -> Result<(), Error> {
        self.capabilities().check(spec, self.kind())
    }

    /// Turns a built app into this runner's artifact.
    async fn package(&self, app: &AppSpec, progress: &dyn Progress) -> Result<Package, Error>;

    /// Deploys a package; idempotent.
    async fn deploy(&self, package: &Package, progress: &dyn Progress) -> Result<DeployReport, Error>;

    /// Invokes a function.
    async fn invoke(&self, request: InvokeRequest) -> Result<Invoked, Error>;

    /// Lists deployed functions.
    async fn list(&self) -> Result<Vec<FunctionInfo>, Error>;

    /// Removes a function.
    async fn remove(&self, function: &str) -> Result<(), Error>;

    /// Recorded activations, with their logs, newest first.
    async fn activations(&self, query: ActivationQuery) -> Result<Vec<Activation>, Error>;
}

/// Builds a runner from a backend profile.
pub type RunnerFactory =
    Arc<dyn Fn(BackendProfile) -> BoxFuture<'static, Result<Arc<dyn Runner>, Error>> + Send + Sync>;

/// Runners registered by kind; configuration picks one.
///
/// ```
/// use faas_api::{Registry, BackendProfile};
/// let registry = Registry::new();
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let err = registry.create(BackendProfile::new("dev", "nimbus")).await.err().unwrap();
/// assert!(err.message().contains("unknown backend kind `nimbus`"));
/// # });
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<String, RunnerFactory>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers a factory for `kind`, replacing any earlier one.
    pub fn register<F, Fut>(&mut self, kind: &str, factory: F) -> &mut Self
    where
        F: Fn(BackendProfile) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Arc<dyn Runner>, Error>> + Send + 'static,
    {
        self.factories.insert(kind.to_string(), Arc::new(move |p| Box::pin(factory(p))));
        self
    }

    /// Registered kinds.
    pub fn kinds(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }

    /// Builds the runner for `profile`.
    pub async fn create(&self, profile: BackendProfile) -> Result<Arc<dyn Runner>, Error> {
        match self.factories.get(&profile.kind) {
            Some(f) => f(profile).await,
            None => Err(Error::bad_input(format!(
                "backend `{}` has unknown backend kind `{}`; known kinds: {}",
                profile.name,
                profile.kind,
                self.kinds().join(", ")
            ))),
        }
    }
}
