//! # faas
//!
//! Write a function once against this crate and run the same binary locally or on a serverless
//! platform. A function binary's `main` builds an [`App`] and hands it to [`serve`], which looks at
//! the environment and speaks whatever protocol the host expects.
//!
//! ```no_run
//! use faas::{App, Context, Error};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Hello { name: String }
//!
//! #[derive(Serialize)]
//! struct Reply { message: String }
//!
//! async fn hello(cx: Context, req: Hello) -> Result<Reply, Error> {
//!     cx.logger().info(format!("greeting {}", req.name));
//!     Ok(Reply { message: format!("Hello, {}!", req.name) })
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     faas::serve(App::new().function("hello", hello)).await
//! }
//! ```
//!
//! ## How `serve` picks the host
//!
//! | environment | what `serve` does |
//! |---|---|
//! | `FAAS_DESCRIBE` set | prints the app [`Manifest`] as JSON and returns (used by `faas dev`/`deploy`) |
//! | `FAAS_LOCAL_SOCKET` set | serves the process-mode child protocol of the local backend on that socket |
//! | `AWS_LAMBDA_RUNTIME_API` set (feature `lambda`) | runs the AWS Lambda Runtime API loop, serving the function `_HANDLER` names |
//! | `__OW_*` set by an OpenWhisk proxy or container (feature `openwhisk`) | serves the action under ActionLoop, dockerskeleton or as a Docker action's `/init` + `/run` server, whichever started it |
//! | `FUNCTION_TARGET` or `K_SERVICE` set (feature `gcf`) | serves the Functions Framework contract on `0.0.0.0:$PORT`, as a 2nd-gen Cloud Function (Cloud Run) |
//! | `FUNCTIONS_CUSTOMHANDLER_PORT` or `FUNCTIONS_HTTPWORKER_PORT` set (feature `azure`) | serves the custom-handler protocol on `127.0.0.1` at that port, as an Azure Functions custom handler |
//! | none of the above (feature `local-http`) | serves the app in-process over HTTP on `127.0.0.1:$PORT` (default 8080) |
//!
//! The two local modes are always compiled in and come first. Each platform host is a
//! [`HostAdapter`] behind one Cargo feature of this crate, listed once in [`ADAPTERS`]; all are
//! on by default. A binary for one platform only can leave the others out, and with them their
//! code (the local HTTP host links the whole local backend and its HTTP front):
//!
//! ```toml
//! [dependencies]
//! faas = { version = "0.1", default-features = false, features = ["lambda"] }
//! ```
//!
//! A new backend adds its host adapter with one feature line in `Cargo.toml` and one line in
//! [`ADAPTERS`]; the shared invocation layer and HTTP serve loop it builds on are in `faas-host`.
//! A backend whose host adapter lives in its own crate, outside this one, needs no change here:
//! its function binaries call [`serve_with`] with that adapter.
#![warn(missing_docs)]

pub use faas_api::*;
/// Compositions: functions built from functions ([`faas_composition`]); declare one with
/// [`AppExt::composition`].
pub use faas_composition as composition;
pub use faas_composition::AppExt;
pub use faas_host::{Env, Host, HostAdapter, ServeFuture};

#[cfg(feature = "local-http")]
mod local_http;
#[cfg(feature = "local-http")]
pub use local_http::{DEFAULT_PORT, LocalHttp, serve_http};

/// The platform hosts of this build, in the order they are tried (after the local modes). One
/// line per platform, each behind its Cargo feature; `local-http` recognises every environment,
/// so it stays last.
///
/// ```
/// use faas::{ADAPTERS, Env, Host};
/// let names: Vec<&str> = ADAPTERS.iter().map(|a| a.name()).collect();
/// assert_eq!(names, ["lambda", "openwhisk", "gcf", "azure", "local-http"]); // the default features
/// let lambda = Env::from_pairs([("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"), ("PORT", "9000")]);
/// assert_eq!(Host::detect(&lambda, ADAPTERS), Host::Platform("lambda"));
/// ```
pub const ADAPTERS: &[&dyn HostAdapter] = &[
    #[cfg(feature = "lambda")]
    &faas_runner_lambda::host::LambdaHost,
    #[cfg(feature = "openwhisk")]
    &faas_runner_openwhisk::host::OpenWhiskHost,
    #[cfg(feature = "gcf")]
    &faas_runner_gcf::host::GcfHost,
    #[cfg(feature = "azure")]
    &faas_runner_azure::host::AzureHost,
    #[cfg(feature = "local-http")]
    &LocalHttp,
];

/// Which host [`serve`] would run in `env`.
///
/// ```
/// use faas::{Env, Host};
/// let env = Env::from_pairs([("FAAS_LOCAL_SOCKET", "/tmp/hello.sock"), ("FAAS_FUNCTION", "hello")]);
/// let socket = "/tmp/hello.sock".to_string();
/// assert_eq!(faas::detect(&env), Host::LocalChild { socket, function: Some("hello".into()) });
/// assert_eq!(faas::detect(&Env::from_pairs([("FAAS_DESCRIBE", "1")])), Host::Describe);
/// // The local modes come before every platform.
/// let both = Env::from_pairs([("FAAS_DESCRIBE", "1"), ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")]);
/// assert_eq!(faas::detect(&both), Host::Describe);
/// assert_eq!(faas::detect(&Env::from_pairs([("PORT", "9000")])), Host::Platform("local-http"));
/// // Cloud Run's PORT comes with K_SERVICE: the Functions Framework host, on every interface.
/// assert_eq!(faas::detect(&Env::from_pairs([("PORT", "8080"), ("K_SERVICE", "hello")])), Host::Platform("gcf"));
/// // The Functions host's port for its custom handler: the Azure host, on 127.0.0.1.
/// let azure = Env::from_pairs([("FUNCTIONS_CUSTOMHANDLER_PORT", "40123"), ("FUNCTIONS_WORKER_RUNTIME", "custom")]);
/// assert_eq!(faas::detect(&azure), Host::Platform("azure"));
/// ```
pub fn detect(env: &Env) -> Host {
    Host::detect(env, ADAPTERS)
}

/// Runs `app` on whatever host the environment names (see the crate docs). Returns when the host
/// shuts down (Ctrl-C for the local HTTP host) or with an error saying why it could not start.
///
/// An invalid app is refused before any host starts:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use faas::{App, Context, Error, ErrorKind};
/// async fn hello(_cx: Context, name: String) -> Result<String, Error> {
///     Ok(format!("Hello, {name}!"))
/// }
/// let err = faas::serve(App::new().function("no spaces allowed", hello)).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::BadInput);
/// assert!(err.message().starts_with("the app is invalid"), "{}", err.message());
/// # }
/// ```
pub async fn serve(app: App) -> Result<(), Error> {
    faas_host::serve(app, ADAPTERS).await
}

/// Runs `app` like [`serve`], trying the host adapters `extra` before this build's [`ADAPTERS`]:
/// how a function binary is served on a platform whose host adapter lives outside this crate (a
/// vendor's runner crate, such as the vendor guide's example `faas-pipes`).
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), faas::Error> {
/// # mod nimbus { pub struct NimbusHost; impl faas::HostAdapter for NimbusHost {
/// #     fn name(&self) -> &'static str { "nimbus" }
/// #     fn detect(&self, env: &faas::Env) -> bool { env.get("NIMBUS_RUNTIME").is_some() }
/// #     fn serve(&self, _: faas::App, _: faas::Env) -> faas::ServeFuture { Box::pin(async { Ok(()) }) } } }
/// use faas::{App, Context, Error};
/// async fn hello(_cx: Context, name: String) -> Result<String, Error> {
///     Ok(format!("Hello, {name}!"))
/// }
/// // Nimbus's runner crate provides `NimbusHost`; the facade's own hosts still work.
/// faas::serve_with(App::new().function("hello", hello), &[&nimbus::NimbusHost]).await
/// # }
/// ```
///
/// The extra adapters come first, so they win over `local-http`, which recognises every
/// environment:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use faas::{App, Context, Env, Error, HostAdapter, ServeFuture};
/// struct Everywhere;
/// impl HostAdapter for Everywhere {
///     fn name(&self) -> &'static str { "everywhere" }
///     fn detect(&self, _env: &Env) -> bool { true }
///     fn serve(&self, app: App, _env: Env) -> ServeFuture {
///         Box::pin(async move { Err(Error::unavailable(format!("served {:?} here", app.names()))) })
///     }
/// }
/// async fn hello(_cx: Context, name: String) -> Result<String, Error> { Ok(name) }
/// let err = faas::serve_with(App::new().function("hello", hello), &[&Everywhere]).await.unwrap_err();
/// assert_eq!(err.message(), "served [\"hello\"] here");
/// # }
/// ```
pub async fn serve_with(app: App, extra: &[&dyn HostAdapter]) -> Result<(), Error> {
    let adapters: Vec<&dyn HostAdapter> = extra.iter().copied().chain(ADAPTERS.iter().copied()).collect();
    faas_host::serve(app, &adapters).await
}
