//! A faithful local Apache OpenWhisk.
//!
//! [`start`] serves, on one port (3233 by default, the standalone OpenWhisk's), the controller's
//! REST API as `wsk`, the `openwhisk` npm client and the other OpenWhisk clients call it, under
//! `/api/v1`: namespaces, actions (create/update, get, list, delete, invoke), packages,
//! activations (list, get, `/logs`, `/result`), triggers (fire), rules, limits, and web actions
//! under `/api/v1/web`. Actions run on a built-in invoker: each action has a pool of warm
//! "containers" (a prepared directory, or a process), reused until they stay idle too long.
//!
//! ```no_run
//! # async fn demo() -> Result<(), faas_api::Error> {
//! let emulator = faas_emulator_openwhisk::start(faas_emulator_openwhisk::EmulatorOptions {
//!     addr: "127.0.0.1:0".parse().unwrap(),
//!     ..Default::default()
//! })
//! .await?;
//! println!("wsk property set --apihost {} --auth {}", emulator.url(), emulator.auth());
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # What is faithful
//!
//! - The controller API's paths, query parameters, status codes and bodies, error bodies
//!   `{"error", "code"}` with OpenWhisk's messages; HTTP Basic auth with a `uuid:key` (the
//!   well-known `guest` key unless told otherwise); namespace `_` as the caller's.
//! - Native actions (`wsk action create NAME exec.zip --native`: kind `blackbox`, image
//!   `openwhisk/dockerskeleton`) run as the dockerskeleton's proxy runs them
//!   (apache/openwhisk-runtime-docker core/actionProxy/actionproxy.py): one process per
//!   activation, the parameters as `argv[1]` and on stdin, the last stdout line the result, the
//!   rest logs, the `__OW_*` variables.
//! - ActionLoop actions (image `openwhisk/actionloop-v2` or `openwhisk/actionloop-base`, and
//!   kinds `go:*` / `rust:*` whose zip holds a prebuilt `exec`) run as the Go proxy runs them
//!   (apache/openwhisk-runtime-go openwhisk/executor.go): `exec` started once per container with
//!   `__OW_WAIT_FOR_ACK`, the acknowledgement and each result on fd 3, one request line on stdin
//!   per activation, the container destroyed at the timeout.
//! - Activation records (`response.status`, `result`, `size`, `logs` as
//!   `<time> stdout: line`, annotations `path`, `kind`, `limits`, `timeout`, `waitTime`,
//!   `initTime`), blocking invokes falling back to 202 after their wait, sequences, triggers and
//!   rules, web actions, and the limits of an OpenWhisk deployment's defaults: timeout
//!   100 ms–300000 ms, memory 128–512 MB (applied as the process's data limit), logs 0–10 MB,
//!   1 MB payload and result, 48 MB code, 100 concurrent activations per namespace.
//!
//! # What is not
//!
//! - No Docker: an action whose code needs an image (other `blackbox` images, `--docker`) or a
//!   language runtime (`nodejs:*`, `python:*`, ...; Go or Rust *source*) is refused when it is
//!   created, with a 400 naming the kinds this emulator runs, so nothing is stored that could
//!   not be invoked.
//! - One namespace (the key's); entities of other namespaces answer 403. Package bindings,
//!   feeds, API gateway routes and the `count` of lists are not emulated.
//! - `limits.concurrency` (1 to 500) is how many activations share a warm container at once;
//!   an ActionLoop container takes them in turn, as its proxy does. Activations that arrive
//!   while a container is still starting start containers of their own (OpenWhisk also queues
//!   them on a starting container).
//! - Logs carry the time they were read, not the time each line was written, so within one
//!   activation the stdout lines come before the stderr lines (each labelled with its stream).
//! - Activations are kept in memory, the newest [`EmulatorOptions::max_activations`] (10,000 by
//!   default); entities live as long as the emulator runs (nothing is persisted; the state
//!   directory holds only the unpacked code).
#![warn(missing_docs)]

mod activations;
mod controller;
pub mod emulate;
mod entities;
mod error;
mod invoker;
mod names;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The well-known key of namespace `guest` that every OpenWhisk deployment ships with
/// (apache/openwhisk ansible/files/auth.guest), the default [`EmulatorOptions::auth`].
///
/// ```
/// let (uuid, key) = faas_emulator_openwhisk::GUEST_AUTH.split_once(':').unwrap();
/// assert_eq!(uuid, "23bc46b1-71f6-4ed5-8c54-816aa4f8c502");
/// assert_eq!(key.len(), 64);
/// ```
pub const GUEST_AUTH: &str =
    "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

/// How long an idle container lives by default ([`EmulatorOptions::idle_timeout`]): the
/// invoker's `idle-container` default of 10 minutes (apache/openwhisk
/// core/invoker/src/main/resources/application.conf).
///
/// ```
/// assert_eq!(faas_emulator_openwhisk::DEFAULT_IDLE_TIMEOUT, std::time::Duration::from_secs(600));
/// ```
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// How to run the emulator.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Where the controller listens (default `127.0.0.1:3233`; port 0 picks a free one).
    pub addr: SocketAddr,
    /// Where unpacked code and logs live; `None` → a temporary directory removed on shutdown.
    pub state_dir: Option<PathBuf>,
    /// The one accepted credential, `uuid:key` (default [`GUEST_AUTH`]).
    pub auth: String,
    /// The namespace the credential owns (default `guest`).
    pub namespace: String,
    /// Activations in flight at once in the namespace before invokes answer 429 (default 100,
    /// OpenWhisk's `concurrentInvocations` default).
    pub concurrent_limit: usize,
    /// Activation records kept (the oldest are dropped first; default 10,000).
    pub max_activations: usize,
    /// How long a blocking invoke waits at most before it answers 202 (default 60 s, the
    /// controller's `max-wait-for-blocking-activation`); its `timeout` parameter may ask less.
    pub max_blocking_wait: Duration,
    /// An idle container is stopped after this long (default [`DEFAULT_IDLE_TIMEOUT`]); `None`
    /// keeps containers until the action changes.
    pub idle_timeout: Option<Duration>,
    /// Largest total of an action's unzipped files, in bytes (default 512 MB; OpenWhisk itself
    /// has no such limit, a container's disk has one); a zip beyond is refused with 400.
    pub max_unzipped: u64,
    /// Copy each activation's log lines to our stderr.
    pub echo_logs: bool,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], emulate::DEFAULT_PORT)),
            state_dir: None,
            auth: GUEST_AUTH.to_string(),
            namespace: "guest".to_string(),
            concurrent_limit: 100,
            max_activations: 10_000,
            max_blocking_wait: Duration::from_secs(60),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_unzipped: 512 * 1024 * 1024,
            echo_logs: false,
        }
    }
}

/// The file in the state directory holding the accepted key (mode 0600).
pub const AUTH_FILE: &str = "auth";

fn write_key_file(path: &std::path::Path, key: &str) -> Result<(), faas_api::Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(key.as_bytes()))
        .map_err(|e| faas_api::Error::unavailable(format!("cannot write {}: {e}", path.display())))
}

/// State shared by the controller, the invoker and the web actions.
pub(crate) struct Shared {
    pub options: EmulatorOptions,
    pub state_dir: PathBuf,
    pub base_url: String,
    pub entities: Mutex<entities::Entities>,
    pub activations: Mutex<activations::Store>,
    /// Activations running or waiting in the namespace (the 429 check).
    pub in_flight: AtomicUsize,
    /// Background activations, stopped by shutdown.
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

/// Starts the emulator: binds `options.addr` and serves the OpenWhisk API there.
///
/// Fails with [`faas_api::ErrorKind::BadInput`] when `options.auth` is not `uuid:key` or the
/// namespace is empty, and with [`faas_api::ErrorKind::BackendUnavailable`] when the address
/// cannot be bound or the state directory cannot be created.
pub async fn start(options: EmulatorOptions) -> Result<Emulator, faas_api::Error> {
    match options.auth.split_once(':') {
        Some((uuid, key)) if !uuid.is_empty() && !key.is_empty() => {}
        _ => return Err(faas_api::Error::bad_input("the auth key must have the form UUID:KEY")),
    }
    names::check_name(&options.namespace)
        .map_err(|e| faas_api::Error::bad_input(format!("namespace `{}`: {}", options.namespace, e.message)))?;
    let state = faas_emulator_kit::StateDir::open(
        options.state_dir.as_deref(),
        "faas-openwhisk-emulator-",
        &["actions", "logs"],
    )?;
    let state_dir = state.path().to_path_buf();
    // The key as a file the emulator's backend profile references (`auth = "file:..."`): backend
    // profiles take secrets only as references, never inline.
    write_key_file(&state_dir.join(AUTH_FILE), &options.auth)?;
    let listener = faas_emulator_kit::listen(options.addr).await?;
    let addr = listener.local_addr().map_err(|e| faas_api::Error::unavailable(e.to_string()))?;
    let max_activations = options.max_activations.max(1);
    let shared = Arc::new(Shared {
        options,
        state_dir,
        base_url: format!("http://{addr}"),
        entities: Mutex::new(Default::default()),
        activations: Mutex::new(activations::Store::new(max_activations)),
        in_flight: AtomicUsize::new(0),
        tasks: Default::default(),
    });
    let app = controller::router(shared.clone());
    let server = faas_emulator_kit::Server::start(listener, app, "openwhisk emulator");
    tracing::info!(%addr, "openwhisk emulator listening");
    Ok(Emulator { shared, addr, server, _state: state })
}

impl Emulator {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API host for `wsk --apihost` and the clients' `apihost`, e.g. `http://127.0.0.1:3233`.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The accepted credential, `uuid:key`.
    pub fn auth(&self) -> &str {
        &self.shared.options.auth
    }

    /// The file holding the accepted credential (mode 0600), which [`emulate`]'s backend
    /// profile references.
    pub fn auth_file(&self) -> PathBuf {
        self.shared.state_dir.join(AUTH_FILE)
    }

    /// The namespace of the credential.
    pub fn namespace(&self) -> &str {
        &self.shared.options.namespace
    }

    /// Stops serving, stops background activations and kills every container.
    pub async fn shutdown(self) {
        self.server.stop().await;
        self.shared.tasks.abort_all();
        let actions = std::mem::take(&mut *self.shared.entities.lock().unwrap()).actions;
        for action in actions.into_values() {
            action.containers.close();
        }
    }

    /// Serves until the server stops (it only stops on a fatal accept error), then shuts down.
    pub async fn wait(mut self) {
        self.server.wait().await;
        self.shutdown().await;
    }
}
