//! A faithful local AWS Lambda.
//!
//! [`start`] serves, on one port, the Lambda REST API the AWS SDKs call (CreateFunction, GetFunction,
//! ListFunctions, UpdateFunctionCode, UpdateFunctionConfiguration, DeleteFunction, Invoke with
//! `RequestResponse`/`Event`/`DryRun`), plus CloudWatch Logs `FilterLogEvents` over `/aws/lambda/<name>`.
//! Functions use the OS-only runtimes (`provided.al2023`, `provided.al2`): the zip's top-level `bootstrap` is run
//! as a process per execution environment, each with its own Runtime API server on 127.0.0.1, exactly as Lambda's
//! custom-runtime protocol describes (any runtime client works: the official `lambda_runtime` crate, faas, ...).
//!
//! ```no_run
//! # async fn demo() -> Result<(), faas_api::Error> {
//! let emulator = faas_emulator_lambda::start(faas_emulator_lambda::EmulatorOptions {
//!     addr: "127.0.0.1:0".parse().unwrap(),
//!     ..Default::default()
//! })
//! .await?;
//! println!("AWS_ENDPOINT_URL={}", emulator.url());
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod code;
mod control;
pub mod emulate;
mod environment;
mod exceptions;
mod functions;
mod invoke;
mod logs;
mod runtime_api;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exceptions::LambdaException;
use functions::Function;

pub use invoke::{InvocationRecord, InvocationType};

/// Most `Event` invocations queued or running at once, emulator-wide; beyond → 429.
pub(crate) const MAX_ASYNC_PENDING: usize = 10_000;

/// How long an idle execution environment lives by default ([`EmulatorOptions::idle_timeout`]).
///
/// ```
/// assert_eq!(faas_emulator_lambda::DEFAULT_IDLE_TIMEOUT, std::time::Duration::from_secs(600));
/// ```
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// How to run the emulator.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Where the control plane listens (default `127.0.0.1:9001`; port 0 picks a free one).
    pub addr: SocketAddr,
    /// Where unpacked code and environment logs live; `None` → a temporary directory removed on shutdown.
    pub state_dir: Option<PathBuf>,
    /// Region in ARNs and `AWS_REGION` (default `us-east-1`).
    pub region: String,
    /// Account id in ARNs (default `123456789012`).
    pub account_id: String,
    /// Execution environments per function (default 64; Lambda's own default is the account's
    /// 1,000 concurrent executions, which a laptop cannot host); an invocation beyond → 429 TooManyRequestsException.
    pub max_environments: usize,
    /// Retries of a failed `Event` invocation (default 2, like Lambda).
    pub async_retries: u32,
    /// Back-off before the first async retry, doubled for each further one (default 1 s).
    pub retry_base: Duration,
    /// Print each invocation's log (START / output / END / REPORT) to our stderr.
    pub echo_logs: bool,
    /// A path prefix for each environment's Runtime API, e.g. `/.rt` as `cargo lambda watch` serves it: the
    /// routes become `<base>/2018-06-01/runtime/...` and `AWS_LAMBDA_RUNTIME_API` is the URL
    /// `http://127.0.0.1:<port><base>`. `None` (the default) is Lambda's own form, a bare `127.0.0.1:<port>`.
    pub runtime_api_base: Option<String>,
    /// An execution environment idle this long is stopped, so the next invocation is a cold start
    /// again (default 10 minutes: AWS does not document it; idle environments are observed to be
    /// reclaimed after roughly 5 to 15 minutes). `None` keeps them until the code or configuration
    /// changes.
    pub idle_timeout: Option<Duration>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 9001)),
            state_dir: None,
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            max_environments: 64,
            async_retries: 2,
            retry_base: Duration::from_secs(1),
            echo_logs: false,
            runtime_api_base: None,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

/// State shared by the control plane, the invokers and the async queue.
pub(crate) struct Shared {
    pub options: EmulatorOptions,
    pub state_dir: PathBuf,
    pub base_url: String,
    pub functions: Mutex<BTreeMap<String, Arc<Function>>>,
    pub records: Mutex<invoke::Records>,
    pub async_pending: AtomicUsize,
    /// Queued async events, stopped by shutdown.
    pub tasks: faas_emulator_kit::Tasks,
}

impl Shared {
    pub fn arn(&self, name: &str) -> String {
        functions::function_arn(&self.options.region, &self.options.account_id, name)
    }

    pub fn not_found(&self, name: &str) -> LambdaException {
        LambdaException::not_found(format!("Function not found: {}", self.arn(name)))
    }

    pub fn function(&self, name: &str) -> Result<Arc<Function>, LambdaException> {
        self.functions.lock().unwrap().get(name).cloned().ok_or_else(|| self.not_found(name))
    }
}

/// A running emulator. Dropping it without [`Emulator::shutdown`] leaves the server running until the runtime ends.
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

/// Starts the emulator: binds `options.addr` and serves the Lambda API there.
///
/// Fails with [`faas_api::ErrorKind::BackendUnavailable`] when the address cannot be bound or the state directory
/// cannot be created, and with [`faas_api::ErrorKind::BadInput`] when `runtime_api_base` is not a path.
pub async fn start(mut options: EmulatorOptions) -> Result<Emulator, faas_api::Error> {
    options.runtime_api_base = match options.runtime_api_base.take() {
        Some(base) => runtime_api::check_runtime_api_base(&base)?,
        None => None,
    };
    let state =
        faas_emulator_kit::StateDir::open(options.state_dir.as_deref(), "faas-lambda-emulator-", &["functions"])?;
    let listener = faas_emulator_kit::listen(options.addr).await?;
    let addr = listener.local_addr().map_err(|e| faas_api::Error::unavailable(e.to_string()))?;
    let shared = Arc::new(Shared {
        options,
        state_dir: state.path().to_path_buf(),
        base_url: format!("http://{addr}"),
        functions: Mutex::new(BTreeMap::new()),
        records: Mutex::new(Default::default()),
        async_pending: AtomicUsize::new(0),
        tasks: Default::default(),
    });
    let app = control::router(shared.clone());
    let server = faas_emulator_kit::Server::start(listener, app, "lambda emulator");
    tracing::info!(%addr, "lambda emulator listening");
    Ok(Emulator { shared, addr, server, _state: state })
}

impl Emulator {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL for SDKs (`endpoint_url`) and `AWS_ENDPOINT_URL`, e.g. `http://127.0.0.1:9001`.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The region in its ARNs (`AWS_REGION` of its functions).
    pub fn region(&self) -> &str {
        &self.shared.options.region
    }

    /// Every recorded invocation attempt of `function` (oldest first; the last 1000 are kept). Async events show
    /// up here once each attempt ends, so tests can see outcomes and retries.
    pub fn invocations(&self, function: &str) -> Vec<InvocationRecord> {
        invoke::records_of(&self.shared, function)
    }

    /// Stops serving, cancels queued async events and kills every execution environment.
    pub async fn shutdown(self) {
        self.server.stop().await;
        self.shared.tasks.abort_all();
        let functions: Vec<Arc<Function>> =
            std::mem::take(&mut *self.shared.functions.lock().unwrap()).into_values().collect();
        for function in functions {
            let mut state = function.state.lock().unwrap();
            state.deleted = true;
            state.retire_idle();
        }
    }

    /// Serves until the server stops (it only stops on a fatal accept error), then shuts down.
    pub async fn wait(mut self) {
        self.server.wait().await;
        self.shutdown().await;
    }
}
