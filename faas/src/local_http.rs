//! The `local-http` host: the app served in-process over HTTP by the local backend and the HTTP
//! front of `faas dev` (what `cargo run` of an app binary does when no platform is detected).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use faas_api::{App, AppSpec, Config, Error, NoProgress, Runner as _};
use faas_host::{Env, HostAdapter, ServeFuture};
use faas_runner_local::{LocalOptions, LocalRunner};

/// Default port of the in-process HTTP host (when neither `FAAS_PORT` nor `PORT` is set).
///
/// ```
/// use faas::{Env, DEFAULT_PORT};
/// assert_eq!(DEFAULT_PORT, 8080);
/// let addr = format!("127.0.0.1:{DEFAULT_PORT}").parse().unwrap();
/// assert_eq!(faas::LocalHttp::addr(&Env::default()), addr);
/// ```
pub const DEFAULT_PORT: u16 = 8080;

/// The `local-http` host adapter. It recognises every environment, so it comes last in
/// [`crate::ADAPTERS`]: it is what runs when no platform is detected.
///
/// ```
/// use faas::{Env, HostAdapter, LocalHttp};
/// assert_eq!(LocalHttp.name(), "local-http");
/// assert!(LocalHttp.detect(&Env::default()));
/// let env = Env::from_pairs([("PORT", "9000")]);
/// assert_eq!(LocalHttp::addr(&env), "127.0.0.1:9000".parse().unwrap());
/// let env = Env::from_pairs([("PORT", "9000"), ("FAAS_PORT", "9100")]);
/// assert_eq!(LocalHttp::addr(&env), "127.0.0.1:9100".parse().unwrap());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalHttp;

impl LocalHttp {
    /// The address it serves on: `127.0.0.1:$FAAS_PORT`, else `$PORT`, else [`DEFAULT_PORT`].
    ///
    /// ```
    /// let env = faas::Env::from_pairs([("PORT", "not a number")]);
    /// assert_eq!(faas::LocalHttp::addr(&env).port(), faas::DEFAULT_PORT);
    /// ```
    pub fn addr(env: &Env) -> SocketAddr {
        let port =
            env.get("FAAS_PORT").or_else(|| env.get("PORT")).and_then(|p| p.parse().ok()).unwrap_or(DEFAULT_PORT);
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }
}

impl HostAdapter for LocalHttp {
    fn name(&self) -> &'static str {
        "local-http"
    }

    fn detect(&self, _env: &Env) -> bool {
        true
    }

    fn serve(&self, app: App, env: Env) -> ServeFuture {
        Box::pin(serve_http(app, LocalHttp::addr(&env)))
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
    faas_host::logging::install(faas_host::logging::LogStyle::Terminal, std::env::var("RUST_LOG").ok().as_deref());
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
