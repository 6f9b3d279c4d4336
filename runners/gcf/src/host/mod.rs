//! The function side on Google Cloud Functions (2nd gen, on Cloud Run): a faas binary serves the
//! Functions Framework contract itself (GoogleCloudPlatform/functions-framework `README.md`).
//!
//! [`GcfHost`] is the `faas` facade's `gcf` host adapter. It takes over when `FUNCTION_TARGET` or
//! `K_SERVICE` is set, and then:
//!
//! - listens on `0.0.0.0:$PORT` (default 8080), as Cloud Run requires; every path invokes the
//!   `FUNCTION_TARGET` function except `/robots.txt` and `/favicon.ico` (404, nothing invoked);
//!   requests run concurrently, up to `FAAS_CONCURRENCY` at once (the function's
//!   `maxInstanceRequestConcurrency`, which the runner passes; more is a 429);
//! - reads requests by `FUNCTION_SIGNATURE_TYPE` (`http`, `cloudevent`, or `event`), or by the
//!   function's kind when it is not set: an HTTP function gets the body with its content type; a
//!   CloudEvent function a binary or structured CloudEvent, or a legacy background event
//!   converted by [`crate::legacy`] (what cannot be read is a 400);
//! - answers an HTTP function's reply with its content type, a CloudEvent function's reply event
//!   as a structured CloudEvent (200 with no body when there is none); errors carry the portable
//!   error body and status (400, 404, 413, 429), a handler that fails is 500 with
//!   `X-Google-Status: crash` (a panic or crash) or `error` (a function error), one stopped at its
//!   deadline (`FAAS_TIMEOUT_SECONDS`, the function's `timeoutSeconds`) 504; no `ETag`;
//! - takes the invocation id from `Function-Execution-Id` (else makes one) and the trace from
//!   `traceparent` (else `X-Cloud-Trace-Context`), and writes `cx.logger()` lines and the host's
//!   own as JSON lines on stdout that Cloud Logging attributes to the request ([`logs`]).

pub mod logs;
mod protocol;

use std::sync::Arc;
use std::time::Duration;

use faas_api::{App, Error, HandlerKind};
use faas_host::http::{Bind, HttpOptions, Listener};
use faas_host::{Env, Invoker, Limits};

pub use protocol::FrameworkProtocol;

/// The function to serve (the Functions Framework's `--target`).
pub const ENV_TARGET: &str = "FUNCTION_TARGET";
/// `http`, `cloudevent` or `event` (the Functions Framework's `--signature-type`).
pub const ENV_SIGNATURE: &str = "FUNCTION_SIGNATURE_TYPE";
/// Set by Cloud Run in every service's container.
pub const ENV_SERVICE: &str = "K_SERVICE";
/// The port to listen on.
pub const ENV_PORT: &str = "PORT";
/// Requests one instance takes at once; more are answered 429 (set by the runner from the
/// function's `maxInstanceRequestConcurrency`; default 1, Cloud Functions' default).
pub const ENV_CONCURRENCY: &str = "FAAS_CONCURRENCY";
/// The function's timeout in seconds (set by the runner from `timeoutSeconds`; default 60).
pub const ENV_TIMEOUT: &str = "FAAS_TIMEOUT_SECONDS";
/// The port when `PORT` is not set.
pub const DEFAULT_PORT: u16 = 8080;
/// Largest request body: Cloud Functions' 32 MiB request limit (docs: quotas, "Max HTTP request size").
pub const MAX_REQUEST: usize = 32 * 1024 * 1024;
/// How long before the deadline the host stops a handler that is still running, to answer 504
/// itself before Cloud Run cuts the request.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// How a request is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// The HTTP request is the input.
    Http,
    /// A CloudEvent (binary, structured, or a legacy event converted).
    CloudEvent,
}

impl Signature {
    /// The signature `FUNCTION_SIGNATURE_TYPE` names (`event`, the legacy background events,
    /// reads like `cloudevent`), else the function's own kind.
    ///
    /// ```
    /// use faas_api::HandlerKind;
    /// use faas_runner_gcf::host::Signature;
    /// assert_eq!(Signature::of(None, HandlerKind::Event).unwrap(), Signature::CloudEvent);
    /// assert_eq!(Signature::of(Some("http"), HandlerKind::Event).unwrap(), Signature::Http);
    /// assert_eq!(Signature::of(Some("event"), HandlerKind::Typed).unwrap(), Signature::CloudEvent);
    /// assert!(Signature::of(Some("typed"), HandlerKind::Typed).unwrap_err().message().contains("`typed`"));
    /// ```
    pub fn of(configured: Option<&str>, kind: HandlerKind) -> Result<Signature, Error> {
        match configured {
            Some("http") => Ok(Signature::Http),
            Some("cloudevent") | Some("event") => Ok(Signature::CloudEvent),
            Some(other) => Err(Error::bad_input(format!(
                "{ENV_SIGNATURE} is `{other}`; this host serves `http`, `cloudevent` and `event`"
            ))),
            None if kind == HandlerKind::Event => Ok(Signature::CloudEvent),
            None => Ok(Signature::Http),
        }
    }
}

/// What the host reads from the environment, checked before it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The function served.
    pub function: String,
    /// How requests are read.
    pub signature: Signature,
    /// Where it listens.
    pub port: u16,
    /// Requests at once.
    pub concurrency: usize,
    /// The function's timeout.
    pub timeout: Duration,
    /// The project, for the trace field of log lines (`GOOGLE_CLOUD_PROJECT`).
    pub project: Option<String>,
}

impl Settings {
    /// The settings for `app` in `env`; a bad value is an error naming the variable.
    ///
    /// ```
    /// use faas_api::{App, Context, Error};
    /// use faas_host::Env;
    /// use faas_runner_gcf::host::Settings;
    /// async fn f(_: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> { Ok(v) }
    /// let app = App::new().function("hello", f).function("bye", f);
    /// let s = Settings::from_env(&app, &Env::from_pairs([("FUNCTION_TARGET", "bye"), ("PORT", "9000")])).unwrap();
    /// assert_eq!((s.function.as_str(), s.port, s.concurrency), ("bye", 9000, 1));
    /// let e = Settings::from_env(&app, &Env::from_pairs([("FUNCTION_TARGET", "nope")])).unwrap_err();
    /// assert!(e.message().contains("no function named `nope`"));
    /// ```
    pub fn from_env(app: &App, env: &Env) -> Result<Settings, Error> {
        let function = faas_host::choose_function(app, env.get(ENV_TARGET), ENV_TARGET)?;
        let kind = app.manifest().function(&function).map(|d| d.handler).unwrap_or(HandlerKind::Typed);
        let number = |name: &str, default: u64, min: u64| -> Result<u64, Error> {
            match env.get(name) {
                None => Ok(default),
                Some(v) => v.trim().parse::<u64>().ok().filter(|n| *n >= min).ok_or_else(|| {
                    Error::bad_input(format!("{name} must be a whole number of at least {min}, got `{v}`"))
                }),
            }
        };
        let port = number(ENV_PORT, DEFAULT_PORT as u64, 1)?;
        let port = u16::try_from(port).map_err(|_| Error::bad_input(format!("{ENV_PORT} is not a port: {port}")))?;
        Ok(Settings {
            signature: Signature::of(env.get(ENV_SIGNATURE), kind)?,
            function,
            port,
            concurrency: number(ENV_CONCURRENCY, 1, 1)? as usize,
            timeout: Duration::from_secs(number(ENV_TIMEOUT, 60, 1)?),
            project: env.get("GOOGLE_CLOUD_PROJECT").map(str::to_string),
        })
    }
}

/// The `gcf` host adapter of the `faas` facade (see the [module docs](self)).
///
/// ```
/// use faas_host::{Env, HostAdapter};
/// use faas_runner_gcf::host::GcfHost;
/// assert!(GcfHost.detect(&Env::from_pairs([("K_SERVICE", "hello"), ("PORT", "8080")])));
/// assert!(GcfHost.detect(&Env::from_pairs([("FUNCTION_TARGET", "hello")])));
/// assert!(!GcfHost.detect(&Env::from_pairs([("PORT", "8080")]))); // the local HTTP host's
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GcfHost;

impl faas_host::HostAdapter for GcfHost {
    fn name(&self) -> &'static str {
        "gcf"
    }

    fn detect(&self, env: &Env) -> bool {
        env.get(ENV_TARGET).is_some() || env.get(ENV_SERVICE).is_some()
    }

    fn serve(&self, app: App, env: Env) -> faas_host::ServeFuture {
        Box::pin(async move {
            let settings = Settings::from_env(&app, &env)?;
            logs::install(env.get("RUST_LOG"));
            let listener = Listener::bind(&Bind::all_interfaces(settings.port)).await?;
            serve_on(app, &env, settings, listener).await
        })
    }
}

/// Serves `app` with `settings` on a bound listener (the tests bind 127.0.0.1, port 0).
pub async fn serve_on(app: App, env: &Env, settings: Settings, listener: Listener) -> Result<(), Error> {
    app.validate()?;
    tracing::debug!(at = %listener.local_addr(), function = %settings.function, "serving the Functions Framework contract");
    let sink = Arc::new(logs::CloudLoggingSink::new(settings.project.clone()));
    let invoker = Invoker::new(app, "gcf")
        .function(Some(settings.function.clone()), ENV_TARGET)
        .limits(Limits { abort_before: Some(DEADLINE_MARGIN), ..Limits::new("Cloud Functions") })
        .vars(env.vars().clone())
        .log_sink(sink.clone());
    // `cx.emit` posts to the event gateway the runner names (`FAAS_EVENTS_URL`).
    let invoker = match env.get(faas_host::wire::ENV_EVENTS) {
        Some(url) => invoker.services(Arc::new(faas_host::local_child::HttpServices::events_only(url))),
        None => invoker,
    };
    let protocol = FrameworkProtocol::new(&settings, sink);
    faas_host::http::serve(listener, invoker, protocol, HttpOptions { max_body: MAX_REQUEST }).await
}
