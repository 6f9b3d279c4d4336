//! # faas-emulator-azure
//!
//! A local Azure Functions host: function apps (sites) whose custom handler runs as the
//! Functions host runs it, with the management surfaces Azure's clients call, all on one port
//! (7071 by default, as `func start`) and routed by the `Host` header:
//!
//! - `<app>.azurewebsites.net` — the site itself: HTTP-triggered functions under the route
//!   prefix (`/api/...`) with their keys, and the host's admin API (`/admin/functions`,
//!   `/admin/host/status`);
//! - `<app>.scm.azurewebsites.net` — the site's Kudu: `POST|PUT /api/zipdeploy` (synchronous,
//!   or `?isAsync=true` with `/api/deployments/latest` to poll), `GET /api/vfs/...` over
//!   `LogFiles/` and `site/wwwroot/`;
//! - `127.0.0.1` / `localhost` with a path under `/api/` (the route prefix) or `/admin/` — the
//!   only site (a 404 naming them when there are several);
//! - anything else — ARM: `Microsoft.Web/sites` under
//!   `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Web/sites/{app}` (create with a
//!   long-running PUT, get, list, delete, app settings, functions, keys). No resource group or
//!   plan needs to exist first. ARM and Kudu need `Authorization: Bearer <token>` (any token, or
//!   the one [`EmulatorOptions::token`] names); ARM also `?api-version=`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), faas_api::Error> {
//! use std::collections::BTreeMap;
//! let emulator = faas_emulator_azure::start(faas_emulator_azure::EmulatorOptions {
//!     addr: "127.0.0.1:0".parse().unwrap(),
//!     ..Default::default()
//! })
//! .await?;
//! // A folder with host.json, the handler and one folder per function:
//! emulator.run_folder("hello-app", std::path::Path::new("target/azure/hello-app"), BTreeMap::new()).await?;
//! let key = emulator.function_key("hello-app", "hello").unwrap();
//! println!("curl '{}/api/hello?code={key}'", emulator.url());
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # What is faithful
//!
//! Ground truth is the open-source Functions host (release 4.1037.0): see the repository's
//! `shared/AZURE-HOST.md`.
//!
//! - The handler's process: `customHandler.description` (`defaultExecutablePath` under the app
//!   root when that file exists, else from `PATH`; `arguments` with `%VAR%` expansion, unknown
//!   variables removed; `defaultWorkerPath`, `workerArguments`, `workingDirectory`), no shell,
//!   the app settings and platform variables (`WEBSITE_SITE_NAME`, `WEBSITE_HOSTNAME`,
//!   `WEBSITE_INSTANCE_ID`, ...) as environment, plus exactly `FUNCTIONS_CUSTOMHANDLER_PORT`,
//!   `FUNCTIONS_HTTPWORKER_PORT`, `FUNCTIONS_CUSTOMHANDLER_WORKER_ID`, `FUNCTIONS_HTTPWORKER_ID`
//!   and `FUNCTIONS_APP_ROOT_PATH`; stdout lines logged as information and stderr lines as
//!   errors in the host log. Ready when `GET /` gets any answer, polled every 25 ms for up to
//!   `initializationTimeout` (30 s); a handler that is not ready in time or exits is started
//!   again; three such errors within 30 minutes put the site in its error state (503 naming
//!   why) until it is deployed, its settings change or it is restarted.
//! - The invocation request: `POST /{function}`, chunked, `X-Azure-Functions-HostVersion`,
//!   `X-Azure-Functions-InvocationId`, `User-Agent: Azure-Functions-Host/4.1037.0.0`,
//!   `traceparent`, `{"Data", "Metadata"}` with scalars sent as their JSON text, the HTTP request
//!   object (`Url`, `Method`, `Query`, `Headers` as arrays, `Params`, `Identities`, `Body` only
//!   with `Content-Length` > 0, base64 for octet-stream and multipart), the HTTP trigger's
//!   metadata, `sys`.
//! - The answer rules: a non-2xx status, a content type other than JSON or a body that is not
//!   a JSON object fails the invocation (the caller gets 500 with an empty body); an empty body
//!   waits for `functionTimeout`; `Outputs.res` gives `statusCode` (`status` alone is ignored),
//!   headers and body (an object as indented JSON; no `Content-Type` → `text/plain;
//!   charset=utf-8`); `Logs` become the invocation's log lines. `functionTimeout` (30 minutes by
//!   default) fails the invocation with 500 and restarts the handler. HTTP-in/HTTP-out
//!   functions pass through unchanged with `enableForwardingHttpRequest`.
//! - Keys: `x-functions-key` wins over `code`; a function key (the host's or the function's
//!   own) or the master key for `authLevel: function`, the master key for `admin`, none for
//!   `anonymous`; 401 with an empty body otherwise. Requests over 100 MiB (or the app setting
//!   `FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`) answer 413 — the host's Kestrel limit
//!   (`DefaultMaxRequestBodySize`); PROTOCOLS.md lists the 100 MB figure as UNCONFIRMED, it is
//!   confirmed by the host's source.
//! - The function logs of `LogFiles/Application/Functions/Function/<fn>/`, written as the host's
//!   FileLogger writes them (`Executing`/`Executed` lines with the invocation id and duration,
//!   the handler's `Logs` before `Executed`, a failure's message on the line after).
//! - Timer triggers on their 6-field NCRONTAB schedule with the timer extension's `TimerInfo`;
//!   queue triggers polling an Azure Storage queue (Azurite) through [`queue`].
//!
//! # What is not
//!
//! - Only custom handlers run (no language workers), and only the trigger is bound: input and
//!   output bindings other than HTTP are not (a queue output binding's value is dropped).
//! - Blob and Event Grid triggers have no listener: they run only through the admin API
//!   (`POST /admin/functions/{name}` with `{"input": ...}`); the blob's content is not read (the
//!   input is passed as the trigger value). An HTTP-triggered function called through the
//!   admin API fails to bind, as in the host ("An HttpRequest is required"): call its route.
//! - No App Service authentication, no slots, no plans, no proxying mode
//!   (`enableProxyingHttpRequest` of later hosts), no `customHandler.http.routes`. Keys cannot
//!   be added or rotated. Kudu takes bearer tokens only (no publishing credentials).
#![warn(missing_docs)]

mod arm;
mod config;
pub mod emulate;
mod host;
mod invoke;
mod json;
mod keys;
mod kudu;
mod logs;
pub mod queue;
mod route;
mod site;
mod triggers;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::body::Body as AxumBody;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use faas_api::Error;

pub use config::ConfigError;
pub use faas_packaging::unpack::Limits;
pub use host::DEFAULT_MAX_REQUEST_BODY;
pub use invoke::HOST_VERSION;
pub use kudu::DEFAULT_PACKAGE_LIMITS;

use site::{Site, SiteRecord};

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the first emulator of this process started (`processUptime`).
pub(crate) fn uptime_ms() -> u128 {
    STARTED.get_or_init(Instant::now).elapsed().as_millis()
}

/// How to run the emulator.
///
/// ```
/// let options = faas_emulator_azure::EmulatorOptions::default();
/// assert_eq!(options.addr.port(), faas_emulator_azure::emulate::DEFAULT_PORT);
/// assert!(options.addr.ip().is_loopback());
/// assert!(options.token.is_none() && options.azurite.is_none());
/// ```
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Where it listens (default `127.0.0.1:7071`; port 0 picks a free one).
    pub addr: SocketAddr,
    /// Where sites live (`<state>/sites/<app>/`); they survive a restart with the same
    /// directory. `None` → a temporary directory removed on shutdown.
    pub state_dir: Option<PathBuf>,
    /// Copy the function and host log lines (and the handlers' output) to our stderr.
    pub echo_logs: bool,
    /// The only bearer token ARM and Kudu accept; `None` → any non-empty token.
    pub token: Option<String>,
    /// A storage connection string (e.g. Azurite's
    /// `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=...;QueueEndpoint=...`)
    /// that queue triggers use instead of their `connection` app setting, and that is the
    /// handler's `AzureWebJobsStorage` when the app sets none.
    pub azurite: Option<String>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], emulate::DEFAULT_PORT)),
            state_dir: None,
            echo_logs: false,
            token: None,
            azurite: None,
        }
    }
}

/// State shared by every surface.
pub(crate) struct Shared {
    pub options: EmulatorOptions,
    pub state_dir: PathBuf,
    pub base_url: String,
    /// By lower-case name.
    sites: Mutex<BTreeMap<String, Arc<Site>>>,
    pub operations: Mutex<HashMap<String, arm::Operation>>,
    pub client: worker::Client,
    pub tasks: faas_emulator_kit::Tasks,
    limits: Mutex<Limits>,
}

impl Shared {
    /// Every site, in name order.
    pub fn sites(&self) -> Vec<Arc<Site>> {
        self.sites.lock().expect("sites").values().cloned().collect()
    }

    /// The site of that name (any case).
    pub fn site(&self, name: &str) -> Option<Arc<Site>> {
        self.sites.lock().expect("sites").get(&name.to_lowercase()).cloned()
    }

    /// The limits zip deploy applies.
    pub fn package_limits(&self) -> Limits {
        *self.limits.lock().expect("limits")
    }

    fn open_site(&self, record: SiteRecord) -> Result<Arc<Site>, String> {
        let dir = self.state_dir.join("sites").join(record.name.to_lowercase());
        let name = record.name.clone();
        Site::open(dir, record, self.client.clone(), self.options.echo_logs, self.options.azurite.clone())
            .map_err(|e| format!("cannot create the site {name}: {e}"))
    }

    /// Creates a site (its directories and keys) and keeps it.
    pub fn create_site(&self, record: SiteRecord) -> Result<Arc<Site>, String> {
        let site = self.open_site(record)?;
        self.sites.lock().expect("sites").insert(site.name.to_lowercase(), site.clone());
        tracing::info!(site = %site.name, "site created");
        Ok(site)
    }

    /// Stops a site and removes it with its files.
    pub async fn delete_site(&self, site: &Arc<Site>) {
        self.sites.lock().expect("sites").remove(&site.name.to_lowercase());
        site.close().await;
        if let Err(e) = std::fs::remove_dir_all(&site.dir) {
            tracing::warn!(site = %site.name, error = %e, "cannot remove the site's directory");
        }
        tracing::info!(site = %site.name, "site deleted");
    }

    /// Replaces a site's app settings; a change restarts its handler.
    pub async fn set_settings(&self, site: &Arc<Site>, settings: BTreeMap<String, String>) -> Result<(), String> {
        let mut record = site.record();
        if record.app_settings == settings {
            return Ok(());
        }
        record.app_settings = settings;
        record.last_modified = chrono::Utc::now().to_rfc3339();
        site.save_record(record).map_err(|e| format!("cannot write site.json: {e}"))?;
        site.restart().await;
        Ok(())
    }
}

/// A running emulator. Dropping it without [`Emulator::shutdown`] leaves the server running
/// until the runtime ends.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let options = faas_emulator_azure::EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
/// let emulator = faas_emulator_azure::start(options).await.unwrap();
/// assert!(emulator.url().starts_with("http://127.0.0.1:"));
/// assert!(emulator.sites().is_empty());
/// assert!(emulator.state_dir().join("sites").is_dir());
/// // ARM wants a bearer token.
/// let url = format!("{}/subscriptions/s/providers/Microsoft.Web/sites?api-version=2023-12-01", emulator.url());
/// assert_eq!(reqwest::get(&url).await.unwrap().status(), 401);
/// emulator.shutdown().await;
/// # }
/// ```
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: faas_emulator_kit::Server,
    _state: faas_emulator_kit::StateDir,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("addr", &self.addr).finish()
    }
}

/// The host name a request is for, lower case, without its port.
fn request_host(request: &http::Request<AxumBody>) -> String {
    let raw = request
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let raw = raw.trim().to_lowercase();
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    raw.split(':').next().unwrap_or("").to_string()
}

fn not_found(message: String) -> Response {
    (http::StatusCode::NOT_FOUND, [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response()
}

async fn dispatch(State(shared): State<Arc<Shared>>, request: http::Request<AxumBody>) -> Response {
    let host = request_host(&request);
    tracing::debug!(%host, method = %request.method(), uri = %request.uri(), "request");
    if let Some(app) = host.strip_suffix(".scm.azurewebsites.net") {
        return match shared.site(app) {
            Some(site) => kudu::handle(shared.clone(), site, request).await,
            None => not_found(format!("404 Web Site not found: no site {app} in this local Azure Functions host.\n")),
        };
    }
    if let Some(app) = host.strip_suffix(".azurewebsites.net") {
        return match shared.site(app) {
            Some(site) => host::handle(site, request).await,
            None => not_found(format!("404 Web Site not found: no site {app} in this local Azure Functions host.\n")),
        };
    }
    let local = matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1" | "");
    let path = request.uri().path().to_ascii_lowercase();
    let arm_path = path.starts_with("/subscriptions") || path.starts_with("/providers") || path.starts_with("/tenants");
    if local && !arm_path {
        let sites = shared.sites();
        let under = |prefix: &str| {
            let prefix = prefix.trim_matches('/').to_ascii_lowercase();
            prefix.is_empty() || path == format!("/{prefix}") || path.starts_with(&format!("/{prefix}/"))
        };
        let for_site = path == "/admin"
            || path.starts_with("/admin/")
            || match sites.as_slice() {
                [only] => under(&only.app().map(|a| a.host.route_prefix.clone()).unwrap_or_else(|| "api".into())),
                _ => under("api"),
            };
        if for_site {
            return match sites.as_slice() {
                [only] => host::handle(only.clone(), request).await,
                [] => not_found("No function app has been created in this local Azure Functions host yet.\n".into()),
                many => {
                    let names: Vec<String> =
                        many.iter().map(|s| format!("{}.azurewebsites.net", s.name.to_lowercase())).collect();
                    not_found(format!(
                        "Several function apps run here ({}): name one in the Host header.\n",
                        names.join(", ")
                    ))
                }
            };
        }
    }
    arm::handle(shared, request).await
}

/// Starts the emulator: binds `options.addr`, loads the sites of the state directory (starting
/// their handlers and triggers in the background) and serves.
///
/// Fails with [`faas_api::ErrorKind::BackendUnavailable`] when the address cannot be bound or
/// the state directory cannot be made.
pub async fn start(options: EmulatorOptions) -> Result<Emulator, Error> {
    let _ = uptime_ms();
    let state = faas_emulator_kit::StateDir::open(options.state_dir.as_deref(), "faas-azure-emulator-", &["sites"])?;
    let listener = faas_emulator_kit::listen(options.addr).await?;
    let addr = listener.local_addr().map_err(|e| Error::unavailable(e.to_string()))?;
    let shared = Arc::new(Shared {
        options,
        state_dir: state.path().to_path_buf(),
        base_url: format!("http://{addr}"),
        sites: Mutex::new(BTreeMap::new()),
        operations: Mutex::new(HashMap::new()),
        client: worker::client(),
        tasks: Default::default(),
        limits: Mutex::new(DEFAULT_PACKAGE_LIMITS),
    });
    // The sites of an earlier run.
    if let Ok(entries) = std::fs::read_dir(shared.state_dir.join("sites")) {
        for entry in entries.flatten() {
            let path = entry.path().join("site.json");
            let Ok(bytes) = std::fs::read(&path) else { continue };
            match serde_json::from_slice::<SiteRecord>(&bytes) {
                Ok(record) => match shared.create_site(record) {
                    Ok(site) => {
                        let _ = std::fs::remove_dir_all(site::staging_dir(&site));
                        site.restart().await;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot load a site"),
                },
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "cannot read a site record"),
            }
        }
    }
    let app = axum::Router::new().fallback(dispatch).with_state(shared.clone());
    let server = faas_emulator_kit::Server::start(listener, app, "azure emulator");
    tracing::info!(%addr, state = %shared.state_dir.display(), "local Azure Functions host listening");
    Ok(Emulator { shared, addr, server, _state: state })
}

impl Emulator {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:7071` (no trailing slash): ARM's endpoint, and the
    /// address every site and Kudu is reached at with its `Host` header.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.shared.state_dir
    }

    /// The names of the sites, in order.
    pub fn sites(&self) -> Vec<String> {
        self.shared.sites().iter().map(|s| s.name.clone()).collect()
    }

    /// Sets the limits zip deploy applies (default [`DEFAULT_PACKAGE_LIMITS`]).
    pub fn set_package_limits(&self, limits: Limits) {
        *self.shared.limits.lock().expect("limits") = limits;
    }

    /// A site's master key.
    pub fn master_key(&self, app: &str) -> Option<String> {
        self.shared.site(app).map(|s| s.keys().master)
    }

    /// The `default` key of a function of a site (its own function key).
    pub fn function_key(&self, app: &str, function: &str) -> Option<String> {
        self.shared.site(app).and_then(|s| s.keys().functions.get(function).and_then(|k| k.get("default").cloned()))
    }

    /// Runs a function app folder (host.json, the handler, one folder per function) as site
    /// `app` with `settings` as its app settings: the site is created if it does not exist (in
    /// [`emulate::SUBSCRIPTION`], resource group [`emulate::RESOURCE_GROUP`], region
    /// [`emulate::REGION`]), the folder is checked and copied into its `wwwroot` as a zip
    /// deployment would unpack it, and the handler is started and waited for.
    ///
    /// Fails with `BadInput` naming the file and key when the folder is not a function app
    /// (and then the previous content keeps running), and with `BackendUnavailable` when the
    /// handler does not become ready.
    pub async fn run_folder(&self, app: &str, folder: &Path, settings: BTreeMap<String, String>) -> Result<(), Error> {
        if !arm::valid_site_name(app) {
            return Err(Error::bad_input(format!(
                "`{app}` is not a valid function app name: use 2 to 60 letters, digits and hyphens"
            )));
        }
        if !folder.is_dir() {
            return Err(Error::bad_input(format!("{} is not a folder", folder.display())));
        }
        let site = match self.shared.site(app) {
            Some(site) => site,
            None => self
                .shared
                .create_site(SiteRecord::new(
                    app,
                    emulate::SUBSCRIPTION,
                    emulate::RESOURCE_GROUP,
                    emulate::REGION,
                    "functionapp,linux",
                ))
                .map_err(Error::unavailable)?,
        };
        let _deploying = site.deploying.lock().await;
        let mut record = site.record();
        if record.app_settings != settings {
            record.app_settings = settings;
            record.last_modified = chrono::Utc::now().to_rfc3339();
            site.save_record(record).map_err(|e| Error::unavailable(format!("cannot write site.json: {e}")))?;
        }
        let staged = site::staging_dir(&site);
        let from = folder.to_path_buf();
        let to = staged.clone();
        tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(&to);
            site::copy_tree(&from, &to)
        })
        .await
        .map_err(|e| Error::unavailable(e.to_string()))?
        .map_err(|e| Error::unavailable(format!("cannot copy {}: {e}", folder.display())))?;
        let result = site::activate(&site, &staged).await;
        let _ = std::fs::remove_dir_all(&staged);
        result.map_err(|e| {
            if e.is_bad_package() {
                Error::bad_input(e.to_string())
            } else {
                Error::unavailable(e.to_string())
            }
        })
    }

    /// Stops serving, every site's triggers and handler.
    pub async fn shutdown(self) {
        self.server.stop().await;
        self.shared.tasks.abort_all();
        for site in self.shared.sites() {
            site.close().await;
        }
    }

    /// Serves until the server stops (it only stops on a fatal accept error), then shuts down.
    pub async fn wait(mut self) {
        self.server.wait().await;
        self.shutdown().await;
    }
}
