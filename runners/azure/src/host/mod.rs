//! The function side on Azure Functions: a faas binary is the function app's custom handler and
//! serves the custom-handler protocol itself (AZURE-HOST.md, azure-contract.md §2).
//!
//! [`AzureHost`] is the `faas` facade's `azure` host adapter. It takes over when
//! `FUNCTIONS_CUSTOMHANDLER_PORT` (or the legacy `FUNCTIONS_HTTPWORKER_PORT`) is set, as the
//! Functions host sets it for its handler process, and then:
//!
//! - reads the function app folder `$FUNCTIONS_APP_ROOT_PATH` ([`folder`]): each function's
//!   trigger and bindings from `*/function.json`, the route prefix, the forwarding switch and
//!   `functionTimeout` from `host.json` (without the folder, every function of the app is an HTTP
//!   function with the bindings `req` and `res`); a malformed file stops the binary with an error
//!   naming the file and the key;
//! - listens on `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`, where the Functions host talks to it,
//!   and serves requests concurrently, as it sends them;
//! - answers `GET /` (the readiness probe) at once, invoking nothing; a path it does not serve is
//!   a 404 with the portable error;
//! - in the default mode, takes `POST /{function}` with `{"Data": {...}, "Metadata": {...}}`
//!   ([`wire`]): an HTTP trigger's request object becomes the payload (`Body` with its
//!   `Content-Type`, base64 decoded for `application/octet-stream` and `multipart/*`; a CloudEvent
//!   from its headers and body for an event function); a native trigger (queue, timer, blob,
//!   Event Grid) becomes a CloudEvent ([`triggers`]);
//! - answers always `200 application/json` with `{"Outputs": {...}, "Logs": [...],
//!   "ReturnValue": null}`, since any other answer makes the Functions host drop the logs and give
//!   the caller an empty 500: an HTTP function's reply or error is the HTTP output
//!   (`{"statusCode": <number>, "headers": {"Content-Type": ...}, "body": "<text>"}`; bytes that
//!   are not UTF-8, and `application/octet-stream`, as base64 with `X-Faas-Encoding: base64`;
//!   errors with their status and the portable error body). A native trigger's function answers
//!   `Outputs: {}`, and a failure is a 500, so that the Functions host counts the invocation failed
//!   and retries a queue message;
//! - with `customHandler.enableForwardingHttpRequest` on, takes the requests of HTTP-in/out
//!   functions as the caller sent them, at `/<routePrefix>/<route>` (function.json's route
//!   templates), and answers them as the faas local HTTP host does; the other functions of the
//!   same app still come in the default mode;
//! - puts each invocation's `cx.logger()` lines, in order and only its own, in its `Logs`, and
//!   nowhere else (the Functions host logs the handler's stdout apart from any invocation); the
//!   host's own diagnostics go to stderr through `tracing`, warnings and errors only unless
//!   `RUST_LOG` says otherwise;
//! - gives each invocation its id (`X-Azure-Functions-InvocationId`), its function name, the
//!   backend name `azure`, its deadline (the function's own timeout from
//!   `FAAS_FUNCTION_TIMEOUTS`, else host.json's `functionTimeout`, else 30 minutes) and its trace
//!   (`traceparent`, else the one the caller sent), plus [`AzureContext`]; a handler still running
//!   [`DEADLINE_MARGIN`] before its deadline is stopped and answered with a timeout (504);
//! - refuses a request body over [`MAX_REQUEST`] with a 413;
//! - gives `cx.emit` the event gateway of `FAAS_EVENTS_URL`, when set.
//!
//! ```
//! use faas_host::{Env, HostAdapter};
//! use faas_runner_azure::host::AzureHost;
//! assert_eq!(AzureHost.name(), "azure");
//! assert!(AzureHost.detect(&Env::from_pairs([("FUNCTIONS_CUSTOMHANDLER_PORT", "40123")])));
//! assert!(AzureHost.detect(&Env::from_pairs([("FUNCTIONS_HTTPWORKER_PORT", "40123")])));
//! assert!(!AzureHost.detect(&Env::from_pairs([("PORT", "8080")])));
//! ```

pub mod folder;
mod protocol;
pub mod route;
pub mod triggers;
pub mod wire;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use faas_api::{App, Error};
use faas_host::capture::LogCapture;
use faas_host::http::{Bind, HttpOptions, Listener};
use faas_host::{Env, Invoker, Limits};
use serde::Serialize;

pub use protocol::{CustomHandlerProtocol, ERROR_LINE, INVOCATION_HEADER};
pub use wire::AzureRequest;

use folder::FunctionApp;

/// The port the Functions host gives its custom handler.
pub const ENV_PORT: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
/// The same port, under its legacy (`httpWorker`) name.
pub const ENV_LEGACY_PORT: &str = "FUNCTIONS_HTTPWORKER_PORT";
/// The worker id the Functions host gives its custom handler.
pub const ENV_WORKER_ID: &str = "FUNCTIONS_CUSTOMHANDLER_WORKER_ID";
/// The same id, under its legacy name.
pub const ENV_LEGACY_WORKER_ID: &str = "FUNCTIONS_HTTPWORKER_ID";
/// The function app folder (the script root).
pub const ENV_APP_ROOT: &str = "FUNCTIONS_APP_ROOT_PATH";
/// Each function's own timeout, `name=seconds,...` (an app setting the runner writes).
pub const ENV_TIMEOUTS: &str = "FAAS_FUNCTION_TIMEOUTS";
/// The Functions host's `functionTimeout` when host.json sets none (AZURE-HOST.md §3; a
/// Consumption plan's own default is 5 minutes, but it writes host.json).
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Largest request body: Azure Functions' HTTP request limit of 100 MB. UNCONFIRMED: stated by
/// PROTOCOLS.md §2.6 from Microsoft's pages, not read in the Functions host's code.
pub const MAX_REQUEST: usize = 100 * 1024 * 1024;
/// How long before the deadline the host stops a handler that is still running, to answer the
/// timeout itself: when the Functions host's own timeout fires first, the caller gets an empty
/// 500 and the handler process is restarted.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(200);
/// Most log text kept for one invocation's `Logs` (the lines past it are counted in a last line).
pub const MAX_LOGS: usize = 4 * 1024 * 1024;

/// Azure's facts about an invocation, available to handlers through
/// [`faas_api::Context::extension`].
///
/// ```
/// use faas_runner_azure::host::AzureContext;
/// async fn who(cx: faas_api::Context, _: serde_json::Value) -> Result<serde_json::Value, faas_api::Error> {
///     let azure = cx.extension::<AzureContext>().cloned().unwrap_or_default();
///     let query = azure.request.map(|r| r.query).unwrap_or_default();
///     Ok(serde_json::json!({"function": azure.function_name, "trigger": azure.trigger_type, "query": query}))
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AzureContext {
    /// Azure's name of the function (its folder in the function app).
    pub function_name: String,
    /// `X-Azure-Functions-InvocationId` (a fresh id when the request has none).
    pub invocation_id: String,
    /// `X-Azure-Functions-HostVersion`, when sent.
    pub host_version: Option<String>,
    /// The trigger binding's type (`httpTrigger`, `queueTrigger`, ...).
    pub trigger_type: String,
    /// Whether the request came forwarded as the caller sent it (not in the default mode).
    pub forwarded: bool,
    /// The HTTP request of an HTTP trigger: URL, method, query, headers, route values, identities.
    pub request: Option<AzureRequest>,
    /// The trigger's binding data (`Metadata`, values decoded: `DequeueCount`, `Id`, `sys`, ...).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `FUNCTIONS_CUSTOMHANDLER_WORKER_ID`.
    pub worker_id: Option<String>,
}

/// Each function's timeout: its own, else the app's, never past host.json's `functionTimeout`
/// (the Functions host's limit for every invocation).
///
/// ```
/// use std::collections::BTreeMap;
/// use std::time::Duration;
/// use faas_runner_azure::host::Timeouts;
/// let own = BTreeMap::from([("sleep".to_string(), Duration::from_secs(2)), ("long".to_string(), Duration::from_secs(900))]);
/// let t = Timeouts::new(own, Some(Some(Duration::from_secs(600))));
/// assert_eq!(t.of("sleep"), Some(Duration::from_secs(2)));
/// assert_eq!(t.of("long"), Some(Duration::from_secs(600)));
/// assert_eq!(t.of("other"), Some(Duration::from_secs(600)));
/// assert_eq!(Timeouts::new(BTreeMap::new(), None).of("any"), Some(Duration::from_secs(1800)));
/// assert_eq!(Timeouts::new(BTreeMap::new(), Some(None)).of("any"), None); // functionTimeout -1
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    own: BTreeMap<String, Duration>,
    app: Option<Duration>,
}

impl Timeouts {
    /// From the functions' own timeouts and host.json's `functionTimeout` (see
    /// [`FunctionApp::function_timeout`]).
    pub fn new(own: BTreeMap<String, Duration>, function_timeout: Option<Option<Duration>>) -> Timeouts {
        Timeouts { own, app: function_timeout.unwrap_or(Some(DEFAULT_FUNCTION_TIMEOUT)) }
    }

    /// The timeout of function `name` (any case); `None`: no limit.
    pub fn of(&self, name: &str) -> Option<Duration> {
        let own =
            self.own.get(name).or_else(|| self.own.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v));
        match (own, self.app) {
            (Some(own), Some(app)) => Some((*own).min(app)),
            (Some(own), None) => Some(*own),
            (None, app) => app,
        }
    }
}

/// What the host reads at start, checked before it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where it listens (on 127.0.0.1).
    pub port: u16,
    /// The function app folder as read (the default one without `FUNCTIONS_APP_ROOT_PATH`).
    pub folder: FunctionApp,
    /// Each function's timeout.
    pub timeouts: Timeouts,
    /// `FUNCTIONS_CUSTOMHANDLER_WORKER_ID`.
    pub worker_id: Option<String>,
    /// Largest request body ([`MAX_REQUEST`]).
    pub max_request: usize,
}

impl Settings {
    /// The settings in `env`; a bad value is an error naming the variable, a malformed host.json
    /// or function.json one naming the file and the key.
    ///
    /// ```
    /// use faas_host::Env;
    /// use faas_runner_azure::host::Settings;
    /// let s = Settings::from_env(&Env::from_pairs([("FUNCTIONS_CUSTOMHANDLER_PORT", "40123"),
    ///     ("FAAS_FUNCTION_TIMEOUTS", "hello=5")])).unwrap();
    /// assert_eq!((s.port, s.folder.route_prefix.as_str()), (40123, "api"));
    /// assert_eq!(s.timeouts.of("hello"), Some(std::time::Duration::from_secs(5)));
    /// let e = Settings::from_env(&Env::from_pairs([("FUNCTIONS_HTTPWORKER_PORT", "high")])).unwrap_err();
    /// assert_eq!(e.message(), "FUNCTIONS_HTTPWORKER_PORT is not a port number: `high`");
    /// ```
    pub fn from_env(env: &Env) -> Result<Settings, Error> {
        let (name, value) =
            [ENV_PORT, ENV_LEGACY_PORT].into_iter().find_map(|n| env.get(n).map(|v| (n, v))).ok_or_else(|| {
                Error::bad_input(format!("{ENV_PORT} is not set: this is no custom handler's environment"))
            })?;
        let port = value
            .trim()
            .parse::<u16>()
            .map_err(|_| Error::bad_input(format!("{name} is not a port number: `{value}`")))?;
        let folder = match env.get(ENV_APP_ROOT) {
            Some(root) => FunctionApp::read(&PathBuf::from(root))?,
            None => FunctionApp::default(),
        };
        let own = match env.get(ENV_TIMEOUTS) {
            Some(text) => folder::parse_timeouts(text)?,
            None => BTreeMap::new(),
        };
        Ok(Settings {
            port,
            timeouts: Timeouts::new(own, folder.function_timeout),
            folder,
            worker_id: env.get(ENV_WORKER_ID).or_else(|| env.get(ENV_LEGACY_WORKER_ID)).map(str::to_string),
            max_request: MAX_REQUEST,
        })
    }
}

/// The `azure` host adapter of the `faas` facade (see the [module docs](self)).
///
/// ```
/// use faas_host::{Env, HostAdapter};
/// let env = Env::from_pairs([("FUNCTIONS_CUSTOMHANDLER_PORT", "40123"), ("FUNCTIONS_WORKER_RUNTIME", "custom")]);
/// assert!(faas_runner_azure::host::AzureHost.detect(&env));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AzureHost;

impl faas_host::HostAdapter for AzureHost {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn detect(&self, env: &Env) -> bool {
        env.get(ENV_PORT).is_some() || env.get(ENV_LEGACY_PORT).is_some()
    }

    fn serve(&self, app: App, env: Env) -> faas_host::ServeFuture {
        Box::pin(async move {
            faas_host::logging::install(
                faas_host::logging::LogStyle::Plain,
                Some(env.get("RUST_LOG").unwrap_or("warn")),
            );
            let settings = Settings::from_env(&env)?;
            let listener = Listener::bind(&Bind::loopback(settings.port)).await?;
            serve_on(app, &env, settings, listener).await
        })
    }
}

/// The serve loop's limit on a request body: the default mode carries the body inside JSON (base64
/// for bytes, escaped text), so there is room for that around [`Settings::max_request`], which is
/// checked on the payload itself.
fn wire_limit(max_request: usize) -> usize {
    max_request.saturating_mul(2).saturating_add(1024 * 1024)
}

/// Serves `app` with `settings` on a bound listener (tests bind 127.0.0.1, port 0).
pub async fn serve_on(app: App, env: &Env, settings: Settings, listener: Listener) -> Result<(), Error> {
    app.validate()?;
    tracing::debug!(at = %listener.local_addr(), functions = ?app.names(), "serving the custom-handler protocol");
    let capture = Arc::new(LogCapture::new(MAX_LOGS));
    let protocol = CustomHandlerProtocol::new(&app, &settings, capture.clone(), env.vars().clone());
    let invoker = Invoker::new(app, "azure")
        .function(None, "the request path")
        .limits(Limits { abort_before: Some(DEADLINE_MARGIN), ..Limits::new("Azure Functions") })
        .vars(env.vars().clone())
        .log_sink(capture);
    // `cx.emit` posts to the event gateway the runner names (`FAAS_EVENTS_URL`).
    let invoker = match env.get(faas_host::wire::ENV_EVENTS) {
        Some(url) => invoker.services(Arc::new(faas_host::local_child::HttpServices::events_only(url))),
        None => invoker,
    };
    let options = HttpOptions { max_body: wire_limit(settings.max_request) };
    faas_host::http::serve(listener, invoker, protocol, options).await
}
