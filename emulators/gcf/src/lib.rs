//! A faithful local Google Cloud Functions (2nd gen).
//!
//! [`start`] serves, on one port (8070 by default), what a deploy tool and a caller of Cloud
//! Functions talk to:
//!
//! - the **Cloud Functions v2 API** under `/v2/projects/{project}/locations/{location}/...`,
//!   as `gcloud` (`api_endpoint_overrides/cloudfunctions`) and Google's client libraries (the
//!   Rust `google-cloud-functions-v2` crate with an endpoint override) call it: `functions`
//!   Get, List (`pageSize`, `pageToken`, location `-`), Create (`?functionId=`), Patch
//!   (`?updateMask=`), Delete, `functions:generateUploadUrl`, `runtimes` (ListRuntimes), and
//!   the long-running `operations` they return;
//! - the **upload target** that `generateUploadUrl` hands out (a signed-URL stand-in on this
//!   same port: `PUT` with `content-type: application/zip`, no credentials), whose
//!   `storageSource {bucket, object}` a function's `buildConfig.source` then names;
//! - **Cloud Logging** `POST /v2/entries:list`, over the entries the functions wrote;
//! - an **event delivery endpoint** of the emulator's own, `POST
//!   /emulator/v1/projects/{project}/locations/{location}/events`, standing in for Eventarc
//!   (see below).
//!
//! Each function is served at its own `serviceConfig.uri`, `http://127.0.0.1:{port}`, as Cloud
//! Run serves a 2nd gen function: every request forwarded as it is to an instance, a process
//! started from the uploaded source the way the platform starts it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), faas_api::Error> {
//! let emulator = faas_emulator_gcf::start(faas_emulator_gcf::EmulatorOptions {
//!     addr: "127.0.0.1:0".parse().unwrap(),
//!     ..Default::default()
//! })
//! .await?;
//! println!("gcloud config set api_endpoint_overrides/cloudfunctions {}/", emulator.url());
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # What is faithful
//!
//! - The API's paths, query parameters and JSON (lowerCamelCase fields, `int64` as strings,
//!   RFC 3339 timestamps); enums as names, or as their proto numbers when the caller asks
//!   `$alt=json;enum-encoding=int` (both accepted on input); errors as `google.rpc.Status`
//!   bodies (`{"error": {"code", "message", "status"}}`): 404 `NOT_FOUND`, 409
//!   `ALREADY_EXISTS`, 409 `ABORTED` while another operation on the function runs, 400
//!   `INVALID_ARGUMENT` naming the field. Any project and location are accepted and no
//!   credentials are needed (an `Authorization` header is ignored).
//! - Operations as Google's clients parse them: `name` `projects/*/locations/*/operations/*`,
//!   `metadata` a `google.cloud.functions.v2.OperationMetadata` (`@type`, `target`, `verb`,
//!   `stages` BUILD/SERVICE(/TRIGGER) with their states, `operationType`,
//!   `requestResource`), `done` with `response` (the `Function`, or `google.protobuf.Empty`
//!   for a delete) or `error`. Create and update answer at once with `done: false` and the
//!   function `DEPLOYING`; the deployment then unpacks the archive (with limits; an entry that
//!   would land outside the source directory fails the build), checks the entry file the
//!   runtime needs, starts one instance and waits for it to listen on `PORT` (Cloud Run fails
//!   a revision whose container does not), and only then marks the function `ACTIVE`. Every
//!   update makes a new revision, `{id}-{NNNNN}-{abc}`, even of an identical function. A
//!   failed deployment leaves the function `FAILED` (with a `stateMessages` entry) and its
//!   operation with `error {code: 3, message}`; a failed update leaves the previous revision
//!   serving, as Cloud Run keeps serving its last ready revision.
//! - Python runtimes (`python3*`): the archive must hold `main.py`; an instance runs
//!   `functions-framework --target $FUNCTION_TARGET --signature-type
//!   $FUNCTION_SIGNATURE_TYPE --source main.py` in the source directory, as the Python
//!   buildpack's image does, when a Functions Framework executable is at hand
//!   ([`EmulatorOptions::functions_framework`]); without one, a small launcher imports
//!   `main.py` as the framework would (so a `main.py` that replaces its process by a bundled
//!   executable, as faas's own archives do, runs as it does in the cloud), and says that the
//!   framework is missing if the import returns. The environment is cleared, then holds
//!   `PORT`, `FUNCTION_TARGET`, `FUNCTION_SIGNATURE_TYPE` (`http`, or `cloudevent` with an
//!   `eventTrigger`), `K_SERVICE`, `K_REVISION`, `K_CONFIGURATION`, `LOG_EXECUTION_ID`, the
//!   function's `serviceConfig.environmentVariables` (reserved names are refused) and `PATH`,
//!   `HOME`, `TMPDIR`, `LANG`, `TZ`.
//! - Scaling: instances start on demand (scale from zero), each takes
//!   `maxInstanceRequestConcurrency` requests at once (default 1), at most `maxInstanceCount`
//!   run (default 100); a request finding no room waits up to
//!   [`EmulatorOptions::max_pending_wait`] and is then refused with 429; idle instances stop
//!   after [`EmulatorOptions::idle_timeout`]. `timeoutSeconds` bounds each request (504 at the
//!   deadline), `availableMemory` is applied as the process's data limit, requests over 32 MiB
//!   answer 413; `X-Cloud-Trace-Context` is added to a request without one.
//! - Logs as Cloud Run writes them: a line on stdout or stderr becomes a `LogEntry` of
//!   `run.googleapis.com/stdout` or `/stderr` for resource `cloud_run_revision`; a line that is
//!   a JSON object is a structured log (`severity`, `message`, `logging.googleapis.com/labels`,
//!   `logging.googleapis.com/trace`, ... lifted into the entry); every request adds a
//!   `run.googleapis.com/requests` entry with `httpRequest` and `trace`.
//!
//! # What is not
//!
//! - Only Python runtimes run (no buildpacks, no containers): a function of another runtime
//!   (`nodejs*`, `go*`, `java*`, ...) is refused when it is created, with a 400 naming the
//!   runtimes this emulator runs. Dependencies in `requirements.txt` are not installed: the
//!   Python that runs the function is the one on `PATH` (or the Functions Framework's own).
//! - Events: there is no Eventarc, Pub/Sub or Cloud Storage. The emulator's own `POST
//!   /emulator/v1/projects/{p}/locations/{l}/events` takes one CloudEvent (structured JSON, or
//!   binary with `ce-*` headers) and delivers it in binary mode, as Eventarc does, to every
//!   active function of that project and location (`-`: any) whose `eventTrigger.eventType`
//!   is the event's `type` and whose `eventFilters` match its attributes; it answers 200 with
//!   `{"deliveries": [{"function", "status"}]}`. `retryPolicy` is stored, not acted on.
//! - Identity and access: no IAM, no ingress settings enforced, no secrets, no VPC, no CMEK;
//!   `serviceConfig.uri` and `url` are both the local listener's address (in the cloud `url`
//!   is `https://REGION-PROJECT.cloudfunctions.net/ID`).
//! - Whatever the messages of some errors are worded as (the wording is Google's where known,
//!   and marked UNCONFIRMED in the source where it is not).
//! - State lives in memory (the state directory holds uploads and unpacked sources); log
//!   entries are kept up to [`EmulatorOptions::max_log_entries`]. The Logging filter language
//!   is a subset: comparisons joined by `AND`.
#![warn(missing_docs)]

mod api;
mod deploy;
pub mod emulate;
mod error;
mod events;
mod logs;
mod serve;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long an idle instance lives by default ([`EmulatorOptions::idle_timeout`]): 15 minutes,
/// the longest Cloud Run keeps an idle instance around (UNCONFIRMED).
///
/// ```
/// assert_eq!(faas_emulator_gcf::DEFAULT_IDLE_TIMEOUT, std::time::Duration::from_secs(900));
/// ```
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(900);

/// How to run the emulator.
///
/// ```
/// let options = faas_emulator_gcf::EmulatorOptions::default();
/// assert_eq!(options.addr.port(), faas_emulator_gcf::emulate::DEFAULT_PORT);
/// assert!(options.addr.ip().is_loopback());
/// ```
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Where the API listens (default `127.0.0.1:8070`; port 0 picks a free one). Each
    /// function gets a port of its own besides, on 127.0.0.1.
    pub addr: SocketAddr,
    /// Where uploads and unpacked sources live; `None` → a temporary directory removed on
    /// shutdown.
    pub state_dir: Option<PathBuf>,
    /// Copy each instance's log lines to our stderr.
    pub echo_logs: bool,
    /// The `functions-framework` executable Python functions run with (e.g. a virtualenv's
    /// `bin/functions-framework`); `None` → the one found on `PATH`, if any; without one, a
    /// launcher that imports `main.py` runs instead (see the crate docs).
    pub functions_framework: Option<PathBuf>,
    /// Whether to look for `functions-framework` on `PATH` when
    /// [`EmulatorOptions::functions_framework`] is `None` (default `true`; `false` always uses
    /// the launcher then).
    pub search_path: bool,
    /// An instance idle this long is stopped (default [`DEFAULT_IDLE_TIMEOUT`]); `None` keeps
    /// instances until the function changes.
    pub idle_timeout: Option<Duration>,
    /// How long a request waits for room on an instance when `maxInstanceCount` instances are
    /// all busy, before it is refused with 429 (default 10 s; UNCONFIRMED: Cloud Run's pending
    /// queue timeout).
    pub max_pending_wait: Duration,
    /// How long a new instance has to listen on its `PORT` (default 240 s, Cloud Run's default
    /// TCP startup probe).
    pub startup_timeout: Duration,
    /// Log entries kept in memory (the oldest are dropped first; default 100,000).
    pub max_log_entries: usize,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], emulate::DEFAULT_PORT)),
            state_dir: None,
            echo_logs: false,
            functions_framework: None,
            search_path: true,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_pending_wait: Duration::from_secs(10),
            startup_timeout: Duration::from_secs(240),
            max_log_entries: 100_000,
        }
    }
}

/// A function as stored.
pub(crate) struct Function {
    /// The `Function` resource as answered (enums as names).
    pub resource: serde_json::Value,
    pub service: Arc<serve::Service>,
    /// The operation running on it, if any.
    pub busy: Option<String>,
    /// The last revision number used.
    pub revisions: u32,
}

/// A long-running operation.
pub(crate) struct Operation {
    /// The `OperationMetadata` (enums as names).
    pub metadata: serde_json::Value,
    /// `None` while running; then the response (with its `@type`) or the error.
    pub result: Option<Result<serde_json::Value, error::ApiError>>,
}

/// An uploaded (or announced) source archive.
pub(crate) struct Upload {
    pub path: PathBuf,
    pub generation: Option<i64>,
}

#[derive(Default)]
pub(crate) struct State {
    /// By full name, `projects/P/locations/L/functions/ID`.
    pub functions: BTreeMap<String, Function>,
    pub operations: HashMap<String, Operation>,
    /// By (bucket, object).
    pub uploads: HashMap<(String, String), Upload>,
}

/// State shared by the API, the deployments and the function listeners.
pub(crate) struct Shared {
    pub options: EmulatorOptions,
    pub state_dir: PathBuf,
    pub base_url: String,
    pub state: Mutex<State>,
    pub logs: Mutex<logs::Store>,
    pub client: serve::Client,
    /// The Functions Framework executable, resolved at start.
    pub framework: Option<PathBuf>,
    /// Deployments in progress, stopped by shutdown.
    pub tasks: faas_emulator_kit::Tasks,
}

/// A running emulator. Dropping it without [`Emulator::shutdown`] leaves the server running
/// until the runtime ends.
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

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| {
        use std::os::unix::fs::PermissionsExt as _;
        p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Starts the emulator: binds `options.addr` and serves the Cloud Functions v2 API, the upload
/// target, `entries:list` and the event endpoint there.
///
/// Fails with [`faas_api::ErrorKind::BackendUnavailable`] when the address cannot be bound or
/// the state directory cannot be created, and with [`faas_api::ErrorKind::BadInput`] when
/// [`EmulatorOptions::functions_framework`] names no file.
pub async fn start(options: EmulatorOptions) -> Result<Emulator, faas_api::Error> {
    let framework = match &options.functions_framework {
        Some(path) if path.is_file() => Some(path.clone()),
        Some(path) => {
            return Err(faas_api::Error::bad_input(format!(
                "the Functions Framework executable {} does not exist",
                path.display()
            )))
        }
        None if options.search_path => find_on_path("functions-framework"),
        None => None,
    };
    let state = faas_emulator_kit::StateDir::open(
        options.state_dir.as_deref(),
        "faas-gcf-emulator-",
        &["uploads", "functions"],
    )?;
    let listener = faas_emulator_kit::listen(options.addr).await?;
    let addr = listener.local_addr().map_err(|e| faas_api::Error::unavailable(e.to_string()))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http();
    let shared = Arc::new(Shared {
        logs: Mutex::new(logs::Store::new(options.max_log_entries)),
        options,
        state_dir: state.path().to_path_buf(),
        base_url: format!("http://{addr}"),
        state: Mutex::new(State::default()),
        client,
        framework,
        tasks: Default::default(),
    });
    let app = api::router(shared.clone());
    let server = faas_emulator_kit::Server::start(listener, app, "gcf emulator");
    tracing::info!(%addr, framework = ?shared.framework, "cloud functions emulator listening");
    Ok(Emulator { shared, addr, server, _state: state })
}

impl Emulator {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API endpoint for the client libraries' endpoint override, e.g.
    /// `http://127.0.0.1:8070` (no trailing slash).
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The Functions Framework executable Python functions run with, if one was found.
    pub fn functions_framework(&self) -> Option<&std::path::Path> {
        self.shared.framework.as_deref()
    }

    /// Stops serving, stops deployments and every instance of every function.
    pub async fn shutdown(self) {
        self.server.stop().await;
        self.shared.tasks.abort_all();
        let functions = std::mem::take(&mut self.shared.state.lock().unwrap().functions);
        for function in functions.into_values() {
            function.service.close();
        }
    }

    /// Serves until the server stops (it only stops on a fatal accept error), then shuts down.
    pub async fn wait(mut self) {
        self.server.wait().await;
        self.shutdown().await;
    }
}
