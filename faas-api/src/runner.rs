//! The runner SPI: what every backend implements so the CLI, the conformance suite and the
//! gateway can package, deploy, invoke, list, remove and read logs the same way everywhere.
//!
//! A backend implements [`Runner`] and is registered by kind in a [`Registry`]; a
//! [`BackendProfile`] from `faas.toml` then picks and configures one. See [`Runner`] for a complete
//! (in-memory) implementation.
//!
//! ```
//! use faas_api::{BackendProfile, Registry};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let registry = Registry::new();
//! let err = registry.create(BackendProfile::new("dev", "local")).await.err().unwrap();
//! assert!(err.message().contains("unknown backend kind `local`"));
//! # });
//! ```

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
/// that do not claim it. Its kebab-case name is the same in tags, `faas.toml` and JSON.
///
/// ```
/// use faas_api::Capability;
/// assert_eq!(Capability::parse("http-routes"), Some(Capability::HttpRoutes));
/// assert_eq!(Capability::CloudEvents.to_string(), "cloudevents");
/// for c in Capability::ALL {
///     assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// A warm instance is reused across invocations (process-global state survives).
    WarmReuse,
    /// Asynchronous (fire-and-forget) invocation: accepted with an activation id, run later.
    Async,
    /// A failed asynchronous invocation is retried by the platform (Lambda's two retries, the
    /// local backend's queue); without it an asynchronous invocation runs once.
    AsyncRetry,
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
    /// A function calls another function of its app by its logical name (`Context::invoke`).
    Invoke,
}

impl Capability {
    /// Every capability, in declaration order.
    ///
    /// ```
    /// use faas_api::Capability;
    /// assert_eq!(Capability::ALL.len(), 11);
    /// assert!(Capability::ALL.contains(&Capability::Emit));
    /// ```
    pub const ALL: [Capability; 11] = [
        Capability::WarmReuse,
        Capability::Async,
        Capability::AsyncRetry,
        Capability::CloudEvents,
        Capability::Logs,
        Capability::HttpRoutes,
        Capability::ProcessIsolation,
        Capability::MemoryLimit,
        Capability::ResponseStreaming,
        Capability::Emit,
        Capability::Invoke,
    ];

    /// The kebab-case name used in tags (`uses:<name>`) and configuration.
    ///
    /// ```
    /// use faas_api::Capability;
    /// assert_eq!(Capability::WarmReuse.as_str(), "warm-reuse");
    /// assert_eq!(Capability::CloudEvents.as_str(), "cloudevents");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::WarmReuse => "warm-reuse",
            Capability::Async => "async",
            Capability::AsyncRetry => "async-retry",
            Capability::CloudEvents => "cloudevents",
            Capability::Logs => "logs",
            Capability::HttpRoutes => "http-routes",
            Capability::ProcessIsolation => "process-isolation",
            Capability::MemoryLimit => "memory-limit",
            Capability::ResponseStreaming => "response-streaming",
            Capability::Emit => "emit",
            Capability::Invoke => "invoke",
        }
    }

    /// Parses a kebab-case name; `None` for anything else.
    ///
    /// ```
    /// use faas_api::Capability;
    /// assert_eq!(Capability::parse("memory-limit"), Some(Capability::MemoryLimit));
    /// assert_eq!(Capability::parse("MemoryLimit"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a runner offers, with its limits. In JSON, `max_timeout` is in milliseconds.
///
/// ```
/// use faas_api::{Capabilities, Capability};
/// let caps: Capabilities = serde_json::from_str(
///     r#"{"claims":["logs","cloudevents"],"max_sync_payload":6291456,"max_async_payload":262144,"max_timeout":900000}"#,
/// ).unwrap();
/// assert!(caps.claims(Capability::CloudEvents));
/// assert!(!caps.claims(Capability::ProcessIsolation));
/// assert_eq!(caps.max_timeout, std::time::Duration::from_secs(900));
/// ```
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
    ///
    /// ```
    /// use faas_api::{Capabilities, Capability};
    /// let caps = Capabilities { claims: [Capability::Logs].into(), max_sync_payload: 1024, max_async_payload: 1024,
    ///     max_timeout: std::time::Duration::from_secs(60) };
    /// assert!(caps.claims(Capability::Logs));
    /// assert!(!caps.claims(Capability::Async));
    /// ```
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

/// A function as deployed: its manifest entry merged with its `faas.toml` settings. In JSON,
/// `timeout` is in milliseconds.
///
/// ```
/// use faas_api::{Capability, FunctionSpec};
/// let mut spec = FunctionSpec::new("resize");
/// spec.memory_mb = 512;
/// spec.requires.push(Capability::MemoryLimit);
/// let json = serde_json::to_value(&spec).unwrap();
/// assert_eq!((json["handler"].as_str(), json["timeout"].as_u64()), (Some("typed"), Some(30_000)));
/// assert_eq!(json["requires"], serde_json::json!(["memory-limit"]));
/// assert_eq!(serde_json::from_value::<FunctionSpec>(json).unwrap(), spec);
/// ```
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
    /// A spec with the defaults: typed handler, 30 s timeout, 128 MB, concurrency 8, no prewarm,
    /// no environment, triggers or required capabilities.
    ///
    /// ```
    /// use faas_api::{FunctionSpec, HandlerKind};
    /// let spec = FunctionSpec::new("hello");
    /// assert_eq!((spec.name.as_str(), spec.handler), ("hello", HandlerKind::Typed));
    /// assert_eq!((spec.timeout.as_secs(), spec.memory_mb, spec.concurrency, spec.prewarm), (30, 128, 8, 0));
    /// assert!(spec.env.is_empty() && spec.triggers.is_empty() && spec.requires.is_empty());
    /// ```
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

/// An app ready to package: a built binary, its manifest, and the merged function specs (usually
/// made with [`AppSpec::from_parts`]).
///
/// ```
/// use faas_api::{App, AppSpec, Config, Context, Error};
/// async fn hello(_cx: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> { Ok(v) }
/// let manifest = App::new().function("hello", hello).manifest();
/// let spec = AppSpec::from_parts(&Config::default_for("greeter"), "target/release/greeter".into(), manifest).unwrap();
/// assert_eq!(spec.app, "greeter");
/// assert_eq!(spec.binary, std::path::PathBuf::from("target/release/greeter"));
/// assert_eq!(spec.functions.len(), 1);
/// assert_eq!(spec.manifest.functions[0].name, "hello");
/// ```
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
    ///
    /// ```
    /// use faas_api::{App, AppSpec, Config, Context, Error};
    /// async fn echo(_cx: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> { Ok(v) }
    /// let manifest = App::new().function("hello", echo).function("bye", echo).manifest();
    ///
    /// let config = Config::parse("[app]\nname = 'greeter'\n[functions.hello]\nmemory_mb = 256\n", "faas.toml").unwrap();
    /// let spec = AppSpec::from_parts(&config, "greeter".into(), manifest.clone()).unwrap();
    /// let memory: Vec<(&str, u32)> = spec.functions.iter().map(|f| (f.name.as_str(), f.memory_mb)).collect();
    /// assert_eq!(memory, [("hello", 256), ("bye", 128)]);
    ///
    /// let typo = Config::parse("[app]\nname = 'greeter'\n[functions.helo]\n", "faas.toml").unwrap();
    /// let err = AppSpec::from_parts(&typo, "greeter".into(), manifest).unwrap_err();
    /// assert!(err.message().contains("configures function `helo`, but the app binary does not define it"));
    /// ```
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

/// The runner-specific artifact made from an [`AppSpec`] by [`Runner::package`].
///
/// ```
/// use faas_api::{FunctionSpec, Package};
/// let package = Package { app: "greeter".into(), artifact: "target/faas/greeter.zip".into(), size: 4096,
///     functions: vec![FunctionSpec::new("hello")] };
/// let json = serde_json::to_value(&package).unwrap();
/// assert_eq!((json["artifact"].as_str(), json["size"].as_u64()), (Some("target/faas/greeter.zip"), Some(4096)));
/// assert_eq!(serde_json::from_value::<Package>(json).unwrap(), package);
/// ```
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

/// How to invoke: synchronously (the default), asynchronously, or as a dry run.
///
/// ```
/// use faas_api::InvokeMode;
/// assert_eq!(InvokeMode::default(), InvokeMode::Sync);
/// assert_eq!(serde_json::to_string(&InvokeMode::DryRun).unwrap(), r#""dry-run""#);
/// ```
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
///
/// ```
/// use faas_api::{InvokeMode, InvokeRequest, Payload};
/// let request = InvokeRequest {
///     mode: InvokeMode::Async,
///     with_logs: true,
///     ..InvokeRequest::new("hello", Payload::json(&serde_json::json!({"name": "Ada"})).unwrap())
/// };
/// assert_eq!((request.function.as_str(), request.mode), ("hello", InvokeMode::Async));
/// assert_eq!(request.payload.content_type(), Some("application/json"));
/// ```
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
    /// What caused this invocation, kept as the callee's [`Activation::cause`] where the
    /// backend records one: the caller's activation id for `cx.invoke`, [`CAUSE_OF_RUN`] and
    /// the run's id for a step of a conducted run.
    pub cause: Option<String>,
}

/// The prefix of the [`Activation::cause`] of a step the event gateway's conductor invoked:
/// `runs/<run id>`, the run's path in the gateway's runs API.
///
/// ```
/// assert_eq!(format!("{}{}", faas_api::runner::CAUSE_OF_RUN, "order-7"), "runs/order-7");
/// ```
pub const CAUSE_OF_RUN: &str = "runs/";

impl InvokeRequest {
    /// A synchronous request, with no trace context and no logs asked for.
    ///
    /// ```
    /// use faas_api::{InvokeMode, InvokeRequest, Payload};
    /// let request = InvokeRequest::new("hello", Payload::bytes(&b"hi"[..]));
    /// assert_eq!((request.function.as_str(), request.mode), ("hello", InvokeMode::Sync));
    /// assert_eq!((request.traceparent, request.with_logs, request.cause), (None, false, None));
    /// assert_eq!(request.payload.body().as_ref(), b"hi");
    /// ```
    pub fn new(function: impl Into<String>, payload: Payload) -> InvokeRequest {
        InvokeRequest { function: function.into(), payload, ..Default::default() }
    }
}

/// What a successful (or accepted) invocation returns.
///
/// ```
/// use faas_api::{Invoked, Payload};
/// let done = Invoked {
///     activation_id: "a1".into(),
///     payload: Payload::json(&serde_json::json!({"ok": true})).unwrap(),
///     logs: Some(vec!["hello".into()]),
/// };
/// assert_eq!(done.payload.json_as::<serde_json::Value>().unwrap()["ok"], true);
/// // An accepted async invocation has only an id.
/// let accepted = Invoked { activation_id: "a2".into(), ..Invoked::default() };
/// assert!(accepted.payload.is_empty() && accepted.logs.is_none());
/// ```
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
///
/// ```
/// use faas_api::ActivationStatus;
/// assert_eq!(serde_json::to_string(&ActivationStatus::Success).unwrap(), r#""success""#);
/// assert_eq!(serde_json::from_str::<ActivationStatus>(r#""pending""#).unwrap(), ActivationStatus::Pending);
/// ```
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

/// One recorded invocation, as [`Runner::activations`] returns it.
///
/// ```
/// use faas_api::{Activation, ActivationStatus, ErrorKind, InvokeMode};
/// let a: Activation = serde_json::from_str(r#"{"id":"a1","function":"hello","start_ms":1700000000000,
///     "duration_us":1500,"cold":true,"status":"error","result_size":0,"mode":"async","attempt":2,
///     "error":{"kind":"timeout","errorType":"Timeout","errorMessage":"ran past 30s"}}"#).unwrap();
/// assert_eq!((a.status, a.mode, a.attempt), (ActivationStatus::Error, InvokeMode::Async, 2));
/// assert_eq!(a.error.as_ref().map(|e| e.kind()), Some(ErrorKind::Timeout));
/// assert!(a.logs.is_empty());
/// assert_eq!(a.billed_us, 0); // records written before it was recorded read as 0
///
/// let ok = Activation { status: ActivationStatus::Success, error: None, ..a };
/// assert!(serde_json::to_value(&ok).unwrap().get("error").is_none());
/// ```
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
    /// The time billed for it, in microseconds, as the backend's own records state it or as
    /// its pricing rounds the duration: Lambda's `Billed Duration` (whole milliseconds),
    /// OpenWhisk's `duration`, Cloud Functions' request latency rounded up to 100 ms, Azure's
    /// `Duration` rounded up to 1 ms with a 100 ms minimum (the Consumption plan); the local
    /// backend bills nothing and reports the duration. 0 while pending.
    #[serde(default)]
    pub billed_us: u64,
    /// What caused it, where the backend records it: the activation of the function or
    /// composition that invoked it with `cx.invoke`, or `runs/<id>` for a step of a run the
    /// event gateway conducted (see [`InvokeRequest::cause`]); `None` for a call from outside.
    /// Recorded by the local backend (both modes) and read from OpenWhisk's own `cause` (a
    /// sequence's components); Lambda, Cloud Functions and Azure do not record it yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
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

/// Which activations to return; the default asks for the newest 50 of every function.
///
/// ```
/// use faas_api::ActivationQuery;
/// let all = ActivationQuery::default();
/// assert_eq!((all.function, all.id, all.limit), (None, None, None));
/// let last_ten = ActivationQuery { function: Some("hello".into()), limit: Some(10), ..Default::default() };
/// assert_eq!(last_ten.function.as_deref(), Some("hello"));
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ActivationQuery {
    /// Only this function.
    pub function: Option<String>,
    /// Only this activation.
    pub id: Option<String>,
    /// At most this many, newest first (default 50).
    pub limit: Option<usize>,
}

/// A deployed function, as listed. In JSON the spec's fields sit next to `state`.
///
/// ```
/// use faas_api::{FunctionInfo, FunctionSpec};
/// let info = FunctionInfo { spec: FunctionSpec::new("hello"), state: "Active".into() };
/// let json = serde_json::to_value(&info).unwrap();
/// assert_eq!((json["name"].as_str(), json["state"].as_str()), (Some("hello"), Some("Active")));
/// assert_eq!(serde_json::from_value::<FunctionInfo>(json).unwrap(), info);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionInfo {
    /// The deployed function's spec.
    #[serde(flatten)]
    pub spec: FunctionSpec,
    /// Backend-specific state (`Active`, `Pending`, ...).
    pub state: String,
}

/// What a deploy did, function by function.
///
/// ```
/// use faas_api::DeployReport;
/// let report = DeployReport { created: vec!["bye".into()], updated: vec!["hello".into()], unchanged: vec![] };
/// let json = serde_json::to_string(&report).unwrap();
/// assert_eq!(json, r#"{"created":["bye"],"updated":["hello"],"unchanged":[]}"#);
/// ```
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
///
/// ```
/// use std::sync::Mutex;
/// use faas_api::Progress;
/// #[derive(Default)]
/// struct Steps(Mutex<Vec<String>>);
/// impl Progress for Steps {
///     fn step(&self, message: &str) {
///         self.0.lock().unwrap().push(message.to_string());
///     }
/// }
/// let steps = Steps::default();
/// let progress: &dyn Progress = &steps;
/// progress.step("building");
/// progress.step("uploading");
/// assert_eq!(*steps.0.lock().unwrap(), ["building", "uploading"]);
/// ```
pub trait Progress: Send + Sync {
    /// A step has started.
    fn step(&self, message: &str);
}

/// Progress that goes nowhere, for callers that do not show it (tests, scripts).
///
/// ```
/// use faas_api::{NoProgress, Progress};
/// let progress: &dyn Progress = &NoProgress;
/// progress.step("deploying"); // does nothing
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn step(&self, _: &str) {}
}

/// A backend. Implemented once per platform; selected by name through a [`Registry`].
///
/// A complete runner that keeps deployed functions in memory and answers every invocation with
/// its input:
///
/// ```
/// use std::sync::Mutex;
/// use faas_api::{Activation, ActivationQuery, App, AppSpec, Capabilities, Capability, Config, Context,
///     DeployReport, Error, ErrorKind, FunctionInfo, FunctionSpec, InvokeRequest, Invoked, NoProgress, Package,
///     Payload, Progress, Runner};
///
/// #[derive(Default)]
/// struct EchoRunner {
///     deployed: Mutex<Vec<FunctionSpec>>,
/// }
///
/// #[async_trait::async_trait]
/// impl Runner for EchoRunner {
///     fn kind(&self) -> &str {
///         "echo"
///     }
///     fn capabilities(&self) -> Capabilities {
///         Capabilities { claims: [Capability::WarmReuse].into(), max_sync_payload: 1 << 20,
///             max_async_payload: 1 << 18, max_timeout: std::time::Duration::from_secs(60) }
///     }
///     async fn package(&self, app: &AppSpec, progress: &dyn Progress) -> Result<Package, Error> {
///         self.check(&app.functions)?;
///         progress.step("packaging");
///         let size = app.binary.metadata().map(|m| m.len()).unwrap_or(0);
///         Ok(Package { app: app.app.clone(), artifact: app.binary.clone(), size, functions: app.functions.clone() })
///     }
///     async fn deploy(&self, package: &Package, _: &dyn Progress) -> Result<DeployReport, Error> {
///         self.check(&package.functions)?;
///         let mut deployed = self.deployed.lock().unwrap();
///         let (mut created, mut updated, mut unchanged) = (vec![], vec![], vec![]);
///         for f in &package.functions {
///             match deployed.iter_mut().find(|d| d.name == f.name) {
///                 Some(d) if d == f => unchanged.push(f.name.clone()),
///                 Some(d) => { *d = f.clone(); updated.push(f.name.clone()) }
///                 None => { deployed.push(f.clone()); created.push(f.name.clone()) }
///             }
///         }
///         Ok(DeployReport { created, updated, unchanged })
///     }
///     async fn invoke(&self, request: InvokeRequest) -> Result<Invoked, Error> {
///         if !self.deployed.lock().unwrap().iter().any(|f| f.name == request.function) {
///             return Err(Error::not_found(format!("no function named `{}`", request.function)));
///         }
///         Ok(Invoked { activation_id: "1".into(), payload: request.payload, logs: None })
///     }
///     async fn list(&self) -> Result<Vec<FunctionInfo>, Error> {
///         let deployed = self.deployed.lock().unwrap();
///         Ok(deployed.iter().map(|s| FunctionInfo { spec: s.clone(), state: "Active".into() }).collect())
///     }
///     async fn remove(&self, function: &str) -> Result<(), Error> {
///         let mut deployed = self.deployed.lock().unwrap();
///         let before = deployed.len();
///         deployed.retain(|f| f.name != function);
///         if deployed.len() == before { Err(Error::not_found(format!("no function named `{function}`"))) } else { Ok(()) }
///     }
///     async fn activations(&self, _: ActivationQuery) -> Result<Vec<Activation>, Error> {
///         Ok(vec![])
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// async fn hello(_cx: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> { Ok(v) }
/// let manifest = App::new().function("hello", hello).manifest();
/// let app = AppSpec::from_parts(&Config::default_for("greeter"), "greeter".into(), manifest).unwrap();
///
/// let runner = EchoRunner::default();
/// let package = runner.package(&app, &NoProgress).await.unwrap();
/// assert_eq!(runner.deploy(&package, &NoProgress).await.unwrap().created, ["hello"]);
/// assert_eq!(runner.deploy(&package, &NoProgress).await.unwrap().unchanged, ["hello"]);
///
/// let reply = runner.invoke(InvokeRequest::new("hello", Payload::bytes(&b"hi"[..]))).await.unwrap();
/// assert_eq!(reply.payload.body().as_ref(), b"hi");
/// assert_eq!(runner.list().await.unwrap()[0].spec.name, "hello");
///
/// runner.remove("hello").await.unwrap();
/// let err = runner.invoke(InvokeRequest::new("hello", Payload::empty())).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::NotFound);
///
/// // The default `check` refuses what the runner does not offer, before anything is deployed.
/// let mut streaming = FunctionSpec::new("stream");
/// streaming.requires.push(Capability::ResponseStreaming);
/// assert!(runner.check(&[streaming]).unwrap_err().message().contains("`response-streaming`"));
/// # }
/// ```
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

/// Builds a runner from a backend profile; [`Registry::register`] makes one from a plain async
/// closure.
///
/// ```
/// use std::sync::Arc;
/// use faas_api::{BackendProfile, Error, runner::RunnerFactory};
/// let factory: RunnerFactory = Arc::new(|profile: BackendProfile| {
///     Box::pin(async move {
///         profile.deny_unknown(&["region"])?;
///         Err(Error::unavailable(format!("backend `{}` is offline", profile.name)))
///     })
/// });
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let err = factory(BackendProfile::new("prod", "lambda").with("regoin", "eu-west-1")).await.err().unwrap();
/// assert!(err.message().contains("key `backends.prod.regoin`: unknown setting"));
/// # });
/// ```
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
    ///
    /// ```
    /// assert!(faas_api::Registry::new().kinds().is_empty());
    /// ```
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers a factory for `kind`, replacing any earlier one.
    ///
    /// ```
    /// # use std::sync::Mutex;
    /// # use faas_api::{Activation, ActivationQuery, AppSpec, Capabilities, DeployReport, Error, FunctionInfo,
    /// #     FunctionSpec, InvokeRequest, Invoked, Package, Progress};
    /// # #[derive(Default)]
    /// # struct EchoRunner { deployed: Mutex<Vec<FunctionSpec>> }
    /// # #[async_trait::async_trait]
    /// # impl Runner for EchoRunner {
    /// #     fn kind(&self) -> &str { "echo" }
    /// #     fn capabilities(&self) -> Capabilities {
    /// #         Capabilities { claims: Default::default(), max_sync_payload: 1 << 20, max_async_payload: 1 << 18,
    /// #             max_timeout: std::time::Duration::from_secs(60) }
    /// #     }
    /// #     async fn package(&self, app: &AppSpec, _: &dyn Progress) -> Result<Package, Error> {
    /// #         Ok(Package { app: app.app.clone(), artifact: app.binary.clone(), size: 0, functions: app.functions.clone() })
    /// #     }
    /// #     async fn deploy(&self, package: &Package, _: &dyn Progress) -> Result<DeployReport, Error> {
    /// #         *self.deployed.lock().unwrap() = package.functions.clone();
    /// #         Ok(DeployReport { created: package.functions.iter().map(|f| f.name.clone()).collect(), updated: vec![], unchanged: vec![] })
    /// #     }
    /// #     async fn invoke(&self, request: InvokeRequest) -> Result<Invoked, Error> {
    /// #         Ok(Invoked { activation_id: "1".into(), payload: request.payload, logs: None })
    /// #     }
    /// #     async fn list(&self) -> Result<Vec<FunctionInfo>, Error> {
    /// #         Ok(self.deployed.lock().unwrap().iter().map(|s| FunctionInfo { spec: s.clone(), state: "Active".into() }).collect())
    /// #     }
    /// #     async fn remove(&self, function: &str) -> Result<(), Error> {
    /// #         self.deployed.lock().unwrap().retain(|f| f.name != function);
    /// #         Ok(())
    /// #     }
    /// #     async fn activations(&self, _: ActivationQuery) -> Result<Vec<Activation>, Error> { Ok(vec![]) }
    /// # }
    /// use std::sync::Arc;
    /// use faas_api::{BackendProfile, Registry, Runner};
    /// // `EchoRunner` is the in-memory runner from the `Runner` docs.
    /// let mut registry = Registry::new();
    /// registry.register("echo", |_profile: BackendProfile| async {
    ///     Ok(Arc::new(EchoRunner::default()) as Arc<dyn Runner>)
    /// });
    /// assert_eq!(registry.kinds(), ["echo"]);
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let runner = registry.create(BackendProfile::new("dev", "echo")).await.unwrap();
    /// assert_eq!(runner.kind(), "echo");
    /// # });
    /// ```
    pub fn register<F, Fut>(&mut self, kind: &str, factory: F) -> &mut Self
    where
        F: Fn(BackendProfile) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Arc<dyn Runner>, Error>> + Send + 'static,
    {
        self.factories.insert(kind.to_string(), Arc::new(move |p| Box::pin(factory(p))));
        self
    }

    /// Registered kinds, sorted.
    ///
    /// ```
    /// use faas_api::{BackendProfile, Error, Registry};
    /// let mut registry = Registry::new();
    /// registry
    ///     .register("lambda", |_: BackendProfile| async { Err(Error::unavailable("no credentials")) })
    ///     .register("local", |_: BackendProfile| async { Err(Error::unavailable("not built")) });
    /// assert_eq!(registry.kinds(), ["lambda", "local"]);
    /// ```
    pub fn kinds(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }

    /// Builds the runner for `profile` with the factory registered for its kind; an unknown kind
    /// is an error naming the profile and listing the known kinds.
    ///
    /// ```
    /// # use std::sync::Mutex;
    /// # use faas_api::{Activation, ActivationQuery, AppSpec, Capabilities, DeployReport, Error, FunctionInfo,
    /// #     FunctionSpec, InvokeRequest, Invoked, Package, Progress};
    /// # #[derive(Default)]
    /// # struct EchoRunner { deployed: Mutex<Vec<FunctionSpec>> }
    /// # #[async_trait::async_trait]
    /// # impl Runner for EchoRunner {
    /// #     fn kind(&self) -> &str { "echo" }
    /// #     fn capabilities(&self) -> Capabilities {
    /// #         Capabilities { claims: Default::default(), max_sync_payload: 1 << 20, max_async_payload: 1 << 18,
    /// #             max_timeout: std::time::Duration::from_secs(60) }
    /// #     }
    /// #     async fn package(&self, app: &AppSpec, _: &dyn Progress) -> Result<Package, Error> {
    /// #         Ok(Package { app: app.app.clone(), artifact: app.binary.clone(), size: 0, functions: app.functions.clone() })
    /// #     }
    /// #     async fn deploy(&self, package: &Package, _: &dyn Progress) -> Result<DeployReport, Error> {
    /// #         *self.deployed.lock().unwrap() = package.functions.clone();
    /// #         Ok(DeployReport { created: package.functions.iter().map(|f| f.name.clone()).collect(), updated: vec![], unchanged: vec![] })
    /// #     }
    /// #     async fn invoke(&self, request: InvokeRequest) -> Result<Invoked, Error> {
    /// #         Ok(Invoked { activation_id: "1".into(), payload: request.payload, logs: None })
    /// #     }
    /// #     async fn list(&self) -> Result<Vec<FunctionInfo>, Error> {
    /// #         Ok(self.deployed.lock().unwrap().iter().map(|s| FunctionInfo { spec: s.clone(), state: "Active".into() }).collect())
    /// #     }
    /// #     async fn remove(&self, function: &str) -> Result<(), Error> {
    /// #         self.deployed.lock().unwrap().retain(|f| f.name != function);
    /// #         Ok(())
    /// #     }
    /// #     async fn activations(&self, _: ActivationQuery) -> Result<Vec<Activation>, Error> { Ok(vec![]) }
    /// # }
    /// use std::sync::Arc;
    /// use faas_api::{BackendProfile, Registry, Runner};
    /// // `EchoRunner` is the in-memory runner from the `Runner` docs.
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut registry = Registry::new();
    /// registry.register("echo", |_: BackendProfile| async { Ok(Arc::new(EchoRunner::default()) as Arc<dyn Runner>) });
    ///
    /// let runner = registry.create(BackendProfile::new("dev", "echo")).await.unwrap();
    /// assert_eq!(runner.kind(), "echo");
    /// let err = registry.create(BackendProfile::new("prod", "lambda")).await.err().unwrap();
    /// assert_eq!(err.message(), "backend `prod` has unknown backend kind `lambda`; known kinds: echo");
    /// # });
    /// ```
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
