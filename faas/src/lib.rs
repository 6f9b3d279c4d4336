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
//! | `AWS_LAMBDA_RUNTIME_API` set | runs the AWS Lambda Runtime API loop, serving the function `_HANDLER` names |
//! | `FAAS_LOCAL_SOCKET` set | serves the process-mode child protocol of the local backend on that socket |
//! | none of the above | serves the app in-process over HTTP on `127.0.0.1:$PORT` (default 8080) |
//!
//! Further platforms (`FUNCTIONS_CUSTOMHANDLER_PORT`, ...) are added by their runner crates.
#![warn(missing_docs)]

pub use faas_api::*;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use faas_runner_local::{LocalOptions, LocalRunner};

/// Default port of the in-process HTTP host (when neither `FAAS_PORT` nor `PORT` is set).
///
/// ```
/// use faas::{Host, DEFAULT_PORT};
/// assert_eq!(DEFAULT_PORT, 8080);
/// let addr = format!("127.0.0.1:{DEFAULT_PORT}").parse().unwrap();
/// assert_eq!(Host::detect(|_| None), Host::LocalHttp { addr });
/// ```
pub const DEFAULT_PORT: u16 = 8080;

/// Which host [`serve`] will run, from the environment (see [`Host::detect`]).
///
/// ```
/// use faas::Host;
/// let env = |k: &str| match k {
///     "FAAS_LOCAL_SOCKET" => Some("/tmp/hello.sock".to_string()),
///     "FAAS_FUNCTION" => Some("hello".to_string()),
///     _ => None,
/// };
/// let socket = "/tmp/hello.sock".to_string();
/// assert_eq!(Host::detect(env), Host::LocalChild { socket, function: Some("hello".into()) });
/// assert_eq!(Host::detect(|k: &str| (k == "FAAS_DESCRIBE").then(|| "1".to_string())), Host::Describe);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// Print the manifest and exit.
    Describe,
    /// The AWS Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API` is set).
    Lambda,
    /// Child process of the local backend's process pool.
    LocalChild {
        /// Unix socket to serve on.
        socket: String,
        /// The function this process is for.
        function: Option<String>,
    },
    /// In-process HTTP host.
    LocalHttp {
        /// Address to listen on.
        addr: SocketAddr,
    },
}

impl Host {
    /// Decides from `var` (an environment lookup).
    ///
    /// ```
    /// use faas::Host;
    /// let env = |k: &str| (k == "PORT").then(|| "9000".to_string());
    /// assert_eq!(Host::detect(env), Host::LocalHttp { addr: "127.0.0.1:9000".parse().unwrap() });
    /// let lambda = |k: &str| (k == "AWS_LAMBDA_RUNTIME_API" || k == "PORT").then(|| "127.0.0.1:9001".to_string());
    /// assert_eq!(Host::detect(lambda), Host::Lambda);
    /// ```
    pub fn detect(var: impl Fn(&str) -> Option<String>) -> Host {
        if var(wire::ENV_DESCRIBE).is_some_and(|v| !v.is_empty()) {
            return Host::Describe;
        }
        if var(faas_runner_lambda::host::ENV_RUNTIME_API).is_some_and(|v| !v.is_empty()) {
            return Host::Lambda;
        }
        if let Some(socket) = var(wire::ENV_SOCKET).filter(|v| !v.is_empty()) {
            return Host::LocalChild { socket, function: var(wire::ENV_FUNCTION).filter(|v| !v.is_empty()) };
        }
        let port = var("FAAS_PORT").or_else(|| var("PORT")).and_then(|p| p.parse().ok()).unwrap_or(DEFAULT_PORT);
        Host::LocalHttp { addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port) }
    }
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
    app.validate()?;
    match Host::detect(|k| std::env::var(k).ok()) {
        Host::Describe => {
            println!("{}", serde_json::to_string(&app.manifest()).expect("a manifest serialises"));
            Ok(())
        }
        Host::Lambda => faas_runner_lambda::host::serve(app).await,
        Host::LocalChild { socket, function } => {
            faas_runner_local::child::serve(app, Path::new(&socket), function).await
        }
        Host::LocalHttp { addr } => serve_http(app, addr).await,
    }
}

/// Serves `app` in-process over HTTP at `addr` until Ctrl-C. Function settings come from a
/// `faas.toml` in the current directory or its parents, when there is one.
///
/// It serves until Ctrl-C, so this is not run here:
///
/// ```no_run
/// use faas::{App, Context, Error};
///
/// async fn hello(_cx: Context, name: String) -> Result<String, Error> {
///     Ok(format!("Hello, {name}!"))
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), Error> {
///     // Always HTTP on port 3000, whatever the environment says.
///     faas::serve_http(App::new().function("hello", hello), "127.0.0.1:3000".parse().unwrap()).await
/// }
/// ```
pub async fn serve_http(app: App, addr: SocketAddr) -> Result<(), Error> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(faas_api::terminal::use_colour(std::io::IsTerminal::is_terminal(&std::io::stderr())))
        .try_init();
    let runner = LocalRunner::in_process(app.clone(), LocalOptions::default())?;
    if let Some(path) = std::env::current_dir().ok().and_then(|d| Config::find(&d)) {
        let config = Config::load(&path)?;
        let exe = std::env::current_exe().unwrap_or_default();
        let spec = AppSpec::from_parts(&config, exe, app.manifest())?;
        let package = runner.package(&spec, &NoProgress).await?;
        runner.deploy(&package, &NoProgress).await?;
    }
    let front = faas_front::bind(runner.clone(), faas_front::FrontOptions { addr, ..Default::default() }).await?;
    runner.set_services_url(front.url());
    eprintln!("faas: serving {} in-process at {}", app.names().join(", "), front.url());
    eprintln!(
        "faas: try  curl -s {}/functions/{} -d '{{...json...}}'",
        front.url(),
        app.names().first().copied().unwrap_or("NAME")
    );
    let _ = tokio::signal::ctrl_c().await;
    front.shutdown().await;
    runner.shutdown().await;
    Ok(())
}
