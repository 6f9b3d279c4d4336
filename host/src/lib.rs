//! # faas-host
//!
//! The function side of faas, written once for every platform. A function binary hands its
//! [`App`] to [`serve`] with the list of platform [`HostAdapter`]s it was built with; `serve`
//! looks at the environment and runs the first host that recognises it.
//!
//! What a host adapter is made of:
//!
//! - [`HostAdapter`]: detection from the environment ([`Env`]) and the serve loop of one platform;
//! - [`invoke::Invoker`]: the invocation layer every host shares: the function choice rule,
//!   the [`faas_api::Context`] from the platform's facts, panic capture, the deadline enforced in
//!   the host, the reply size limit and the payload envelope of JSON-only platforms;
//! - [`http`]: the one HTTP serve loop of push-style hosts (the platform sends each invocation
//!   as an HTTP request), over a Unix socket or TCP, with the platform's decoding and encoding
//!   plugged in as an [`http::HttpProtocol`];
//! - [`lines`]: the serve loop of line-oriented hosts that are not HTTP (OpenWhisk's ActionLoop:
//!   requests on stdin, answers on fd 3), with the platform's format as a [`lines::LineProtocol`];
//! - [`client`]: the one HTTP client of the function side (platform APIs, services);
//! - [`capture`]: log lines kept per invocation, for platforms that return them with the answer;
//! - [`trace`]: W3C trace context from headers or from the event;
//! - [`logging`]: the tracing subscriber every host installs, writing where its platform reads logs;
//! - [`wire`]: the names and helpers of the local wire protocols (the child protocol, the portable
//!   error on HTTP that the local front shares).
//!
//! Two local modes are always compiled in and detected before any platform: `FAAS_DESCRIBE`
//! (print the app's manifest, see [`describe`]) and the child process of the local backend's
//! process pool (`FAAS_LOCAL_SOCKET`, see [`local_child`]).
//!
//! ```
//! use faas_api::{App, Context, Error};
//! use faas_host::{Env, Host, HostAdapter, ServeFuture};
//!
//! /// A made-up platform that sets `EXAMPLE_PLATFORM`.
//! struct Example;
//! impl HostAdapter for Example {
//!     fn name(&self) -> &'static str { "example" }
//!     fn detect(&self, env: &Env) -> bool { env.get("EXAMPLE_PLATFORM").is_some() }
//!     fn serve(&self, _app: App, _env: Env) -> ServeFuture { Box::pin(async { Ok(()) }) }
//! }
//!
//! let adapters: &[&dyn HostAdapter] = &[&Example];
//! let env = Env::from_pairs([("EXAMPLE_PLATFORM", "1")]);
//! assert_eq!(Host::detect(&env, adapters), Host::Platform("example"));
//! // The local modes win over every platform.
//! let env = Env::from_pairs([("EXAMPLE_PLATFORM", "1"), ("FAAS_DESCRIBE", "1")]);
//! assert_eq!(Host::detect(&env, adapters), Host::Describe);
//! assert_eq!(Host::detect(&Env::default(), adapters), Host::None);
//! ```
#![warn(missing_docs)]

pub mod capture;
pub mod client;
pub mod envelope;
pub mod http;
pub mod invoke;
pub mod lines;
pub mod local_child;
pub mod logging;
pub mod state;
#[cfg(feature = "tls")]
mod tls;
pub mod trace;
pub mod wire;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use faas_api::{App, Error};

pub use invoke::{Facts, Invoker, Limits, choose_function};

/// What [`HostAdapter::serve`] returns: the host's whole life, ending when the platform shuts it
/// down or with the error that stopped it.
pub type ServeFuture = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'static>>;

/// One platform's host: how to recognise its environment and how to serve an app there.
///
/// A backend's runner crate implements it (for Lambda, the runner crate's `host::LambdaHost`),
/// and the `faas` facade lists it behind one Cargo feature. Detection must be cheap and look only
/// at `env`; serving reads whatever else the platform provides.
///
/// ```
/// use faas_api::{App, Error};
/// use faas_host::{Env, HostAdapter, ServeFuture};
///
/// struct CustomHandler;
/// impl HostAdapter for CustomHandler {
///     fn name(&self) -> &'static str { "custom-handler" }
///     fn detect(&self, env: &Env) -> bool { env.get("FUNCTIONS_CUSTOMHANDLER_PORT").is_some() }
///     fn serve(&self, app: App, env: Env) -> ServeFuture {
///         let port = env.get("FUNCTIONS_CUSTOMHANDLER_PORT").unwrap_or_default().to_string();
///         Box::pin(async move {
///             Err(Error::unavailable(format!("{} functions, port {port}: not served in this example", app.names().len())))
///         })
///     }
/// }
/// let env = Env::from_pairs([("FUNCTIONS_CUSTOMHANDLER_PORT", "4711")]);
/// assert!(CustomHandler.detect(&env));
/// assert!(!CustomHandler.detect(&Env::default()));
/// ```
pub trait HostAdapter: Send + Sync + 'static {
    /// The adapter's name, which is also the `faas` facade's Cargo feature for it (`lambda`).
    fn name(&self) -> &'static str;
    /// Whether `env` is this platform's environment.
    fn detect(&self, env: &Env) -> bool;
    /// Serves `app` (already validated) until the platform shuts the host down.
    fn serve(&self, app: App, env: Env) -> ServeFuture;
}

/// A snapshot of the environment variables a host reads. Empty values count as unset.
///
/// ```
/// use faas_host::Env;
/// let env = Env::from_pairs([("PORT", "9000"), ("EMPTY", "")]);
/// assert_eq!(env.get("PORT"), Some("9000"));
/// assert_eq!(env.get("EMPTY"), None);
/// assert_eq!(env.get("MISSING"), None);
/// assert_eq!(env.vars().len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// The process environment (variables that are not valid Unicode are left out).
    ///
    /// ```
    /// let env = faas_host::Env::from_process();
    /// assert_eq!(env.get("PATH").map(str::to_string), std::env::var("PATH").ok().filter(|p| !p.is_empty()));
    /// ```
    pub fn from_process() -> Env {
        Env { vars: std::env::vars().collect() }
    }

    /// An environment of exactly `pairs`.
    ///
    /// ```
    /// let env = faas_host::Env::from_pairs([("A", "1")]);
    /// assert_eq!(env.get("A"), Some("1"));
    /// ```
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Env {
        Env { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The value of `name`, when set and not empty.
    ///
    /// ```
    /// assert_eq!(faas_host::Env::default().get("HOME"), None);
    /// ```
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Every variable, empty ones included (what [`faas_api::Context::var`] shows a handler).
    ///
    /// ```
    /// let env = faas_host::Env::from_pairs([("B", "2"), ("A", "1")]);
    /// assert_eq!(env.vars().keys().collect::<Vec<_>>(), ["A", "B"]);
    /// ```
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }
}

/// Which host [`serve`] runs for an environment (see [`Host::detect`]).
///
/// ```
/// use faas_host::{Env, Host};
/// let env = Env::from_pairs([("FAAS_LOCAL_SOCKET", "/tmp/hello.sock"), ("FAAS_FUNCTION", "hello")]);
/// let socket = "/tmp/hello.sock".to_string();
/// assert_eq!(Host::detect(&env, &[]), Host::LocalChild { socket, function: Some("hello".into()) });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `FAAS_DESCRIBE` is set: print the manifest and return.
    Describe,
    /// `FAAS_LOCAL_SOCKET` is set: a child process of the local backend's process pool.
    LocalChild {
        /// Unix socket to serve on.
        socket: String,
        /// The function this process is for (`FAAS_FUNCTION`).
        function: Option<String>,
    },
    /// The platform adapter of this name recognised the environment.
    Platform(&'static str),
    /// Nothing did.
    None,
}

impl Host {
    /// Decides from `env`: the local modes first (`FAAS_DESCRIBE`, then `FAAS_LOCAL_SOCKET`),
    /// then each adapter of `adapters` in order; the first that recognises `env` wins.
    ///
    /// ```
    /// use faas_host::{Env, Host};
    /// assert_eq!(Host::detect(&Env::from_pairs([("FAAS_DESCRIBE", "1")]), &[]), Host::Describe);
    /// assert_eq!(Host::detect(&Env::from_pairs([("FAAS_DESCRIBE", "")]), &[]), Host::None);
    /// ```
    pub fn detect(env: &Env, adapters: &[&dyn HostAdapter]) -> Host {
        if env.get(wire::ENV_DESCRIBE).is_some() {
            return Host::Describe;
        }
        if let Some(socket) = env.get(wire::ENV_SOCKET) {
            return Host::LocalChild {
                socket: socket.to_string(),
                function: env.get(wire::ENV_FUNCTION).map(str::to_string),
            };
        }
        match adapters.iter().find(|a| a.detect(env)) {
            Some(a) => Host::Platform(a.name()),
            None => Host::None,
        }
    }
}

/// Runs `app` on the host the process environment names (see [`serve_in`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use faas_api::{App, Context, Error, ErrorKind};
/// async fn hello(_cx: Context, name: String) -> Result<String, Error> { Ok(format!("Hello, {name}!")) }
/// // An invalid app is refused before any host starts.
/// let err = faas_host::serve(App::new().function("no spaces allowed", hello), &[]).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::BadInput);
/// # }
/// ```
pub async fn serve(app: App, adapters: &[&dyn HostAdapter]) -> Result<(), Error> {
    serve_in(app, Env::from_process(), adapters).await
}

/// Runs `app` on the host `env` names: validates the app, then prints the manifest, serves the
/// local child protocol, or hands the app to the first adapter of `adapters` that recognises
/// `env`. When none does, the error lists the hosts this binary was built with.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use faas_api::{App, Context, Error, ErrorKind};
/// use faas_host::{Env, HostAdapter, ServeFuture};
/// struct Lambda;
/// impl HostAdapter for Lambda {
///     fn name(&self) -> &'static str { "lambda" }
///     fn detect(&self, env: &Env) -> bool { env.get("AWS_LAMBDA_RUNTIME_API").is_some() }
///     fn serve(&self, _app: App, _env: Env) -> ServeFuture { Box::pin(async { Ok(()) }) }
/// }
/// async fn hello(_cx: Context, name: String) -> Result<String, Error> { Ok(format!("Hello, {name}!")) }
/// let app = App::new().function("hello", hello);
/// let err = faas_host::serve_in(app, Env::default(), &[&Lambda]).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::BackendUnavailable);
/// assert!(err.message().contains("built with the hosts: lambda"), "{}", err.message());
/// # }
/// ```
pub async fn serve_in(app: App, env: Env, adapters: &[&dyn HostAdapter]) -> Result<(), Error> {
    app.validate()?;
    match Host::detect(&env, adapters) {
        Host::Describe => describe(&app),
        Host::LocalChild { socket, function } => {
            local_child::serve_with(app, std::path::Path::new(&socket), function, &env).await
        }
        Host::Platform(name) => {
            let adapter = adapters.iter().find(|a| a.name() == name).expect("detect returned one of the adapters");
            adapter.serve(app, env).await
        }
        Host::None => {
            let names: Vec<&str> = adapters.iter().map(|a| a.name()).collect();
            Err(Error::unavailable(format!(
                "no host recognises this environment; this binary was built with the hosts: {} (plus the local modes \
                 {} and {})",
                if names.is_empty() { "none".to_string() } else { names.join(", ") },
                wire::ENV_DESCRIBE,
                wire::ENV_SOCKET
            )))
        }
    }
}

/// The `FAAS_DESCRIBE` mode: prints the app's manifest as one line of JSON on stdout (what
/// `faas dev` and `faas deploy` read to learn the app's functions).
///
/// ```
/// use faas_api::{App, Error, Payload};
/// let app = App::new().raw("echo", |_cx, p: Payload| async move { Ok::<_, Error>(p) });
/// faas_host::describe(&app).unwrap(); // prints {"functions":[{"name":"echo",...}]...}
/// ```
pub fn describe(app: &App) -> Result<(), Error> {
    println!("{}", serde_json::to_string(&app.manifest()).expect("a manifest serialises"));
    Ok(())
}
